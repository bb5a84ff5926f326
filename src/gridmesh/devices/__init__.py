"""Device models: the state a simulated device carries from one time step to the next."""
