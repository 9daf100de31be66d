"""Studies: grids of tokenizers x params x tasks x params x seeds, run as one step graph."""
