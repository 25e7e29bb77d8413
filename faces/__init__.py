"""The faces of scene-matcher: the `scene-matcher` command (cli), the HTTP API (http_app) and the bundle
providers both serve from (providers). Imports pipelines/, scene_assets/ and evaluation/; nothing but
tests, benchmarks and scripts imports faces/."""
