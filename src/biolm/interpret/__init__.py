"""Looking inside a trained run: per-base attributions, motifs from them, and sequence logos."""
