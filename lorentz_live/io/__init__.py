"""File formats at the edge of the engine: images, micromagnetic output, PNG."""
