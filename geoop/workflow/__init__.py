"""What a user runs end to end: the main job (`geoop demo`) and, later, train / evaluate / predict."""
