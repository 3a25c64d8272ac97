"""nbgrader's own command line, started faster: ``python -m course_tools.nbgrader_main autograde ...``.

`course grade` starts one nbgrader process per submission, so nbgrader's start-up is paid once per
submission instead of once per batch. About half of it (1.5 of 2.9 s on a 2-core machine) is
jsonschema importing the optional ``rfc3987_syntax`` package (installed here through
jupyter-events) and building its grammar, only to check the "iri" string formats. No schema
nbgrader or nbformat validates uses those formats, so this entry point keeps the package out of
the process; everything else is nbgrader's unchanged ``main``.
"""

import sys

if __name__ == "__main__":
    sys.modules.setdefault("rfc3987_syntax", None)  # a None entry makes `import rfc3987_syntax` fail at once
    from nbgrader.apps.nbgraderapp import main

    main()
