"""Construction kits → analysed stems: unpack, probe, analyse, classify, journal, pipeline."""
