/* sphere-docs lazy activation script: see sphere_docs/static (filled in by the lazy-mode work). */
