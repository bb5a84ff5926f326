"""Studies: a simulated clock drives device models and the digital twin over days or a year."""
