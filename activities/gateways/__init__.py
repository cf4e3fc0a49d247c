"""Gateway adapters: one per gateway behind one small interface; errors are classified here."""
