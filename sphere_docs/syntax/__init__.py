"""The syntax layer: where the directive is in a page, as each engine reads it.

Python-Markdown's processors (:mod:`.markdown`); may import only the core.
"""
