"""Plan → mastered WAV: select, conform, sequence, mix, master, export."""
