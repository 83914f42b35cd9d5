"""The core: the option and settings schemas, the message catalog, the embed record, markup.

Used by every other layer; imports nothing from them (nor MkDocs, Sphinx or requests).
"""
