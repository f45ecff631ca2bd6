"""The fixed vocabularies shared by analysis, arranging, rendering and the synthesiser."""

#: The fixed taxonomy of stem categories (what a stem query may ask for).
CATEGORIES = ("kick", "snare", "clap", "hihat", "cymbal", "tom", "perc", "drum_loop", "bass",
              "lead", "synth", "pad", "chord", "arp", "vocal", "fx", "atmo")
#: Tags the analyser puts on stems; rules may only ask for these.
TAGS = ("dark", "bright", "aggressive", "soft", "punchy", "driving", "industrial", "metallic",
        "warm", "distorted", "acid", "wide", "deep")
#: Categories whose stems carry pitch: they must fit a plan's key, drums and noise need not.
TONAL_CATEGORIES = frozenset({"bass", "lead", "synth", "pad", "chord", "arp", "vocal", "atmo"})
