"""Small games shipped with the toolkit, as PettingZoo environments."""
