"""The digital twin's physics: batch power flow (power-grid-model) and its results."""
