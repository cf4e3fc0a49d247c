"""The local stack: everything the product needs, started on embedded defaults."""
