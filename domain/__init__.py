"""Contract types shared by workflows, activities and the API; imports nothing from them."""
