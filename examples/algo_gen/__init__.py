"""The legacy algorithm-generation job, rebuilt on asyncgen."""
