"""WTForms forms of the pages: validation messages are shown next to their field."""
