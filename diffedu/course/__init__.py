"""The course tools: what acts on notebook files (copies, student versions, the site, costs).

It imports :mod:`diffedu.teach` and the maths core, never the reverse.
:mod:`~diffedu.course.notebooks` holds what both the console command
(:mod:`~diffedu.course.cli`) and the site (:mod:`~diffedu.course.site`) need: finding lessons,
their metadata and costs, student copies and the one lesson table. The command imports the site
(``diffedu site build``, ``diffedu measure``); the site never imports the command.
"""
