"""One package per technology domain: its source clients, its mapping to relevés, its asset."""
