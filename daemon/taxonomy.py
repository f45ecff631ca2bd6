"""The fixed vocabularies shared by analysis, arranging, rendering and the synthesiser.

Names only: what a category *is* (tonal, percussive, its loudness, its stand-ins...) lives in
``rules/categories.toml`` (`daemon.categories`), which must define exactly `CATEGORIES`.
"""

#: The fixed taxonomy of stem categories (what a stem query may ask for).
CATEGORIES = ("kick", "snare", "clap", "hihat", "cymbal", "tom", "perc", "drum_loop", "bass",
              "lead", "synth", "pad", "chord", "arp", "vocal", "fx", "atmo")
#: Tags the analyser puts on stems; rules may only ask for these.
TAGS = ("dark", "bright", "aggressive", "soft", "punchy", "driving", "industrial", "metallic",
        "warm", "distorted", "acid", "wide", "deep")
#: Step-pattern instruments of rules/patterns.toml. A category's one-shots play one of them
#: (its `pattern` trait); "open_hat" is the hihat part of a hat named open, "stab" the part
#: every tonal one-shot shares.
PATTERN_INSTRUMENTS = ("kick", "clap", "snare", "hihat", "open_hat", "cymbal", "perc", "tom",
                       "bass", "stab")
