"""What a user runs end to end: the main job (`geoop demo`), prediction on files, the mesh gallery."""
