"""The course tools: what acts on notebook files (copies, student versions, the site, costs).

It imports :mod:`diffedu.teach` and the maths core, never the reverse. :mod:`.notebooks` holds
what both :mod:`.cli` and :mod:`.site` need; they import it, not each other.
"""
