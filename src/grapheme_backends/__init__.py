"""Built-in compute backends for grapheme: numpy (reference), torch, jax."""
