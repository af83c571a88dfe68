"""The batch engine shared by every format: discover → plan → prepare → sign →
finish → write atomically → audit → report."""
