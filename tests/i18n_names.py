"""Words a Korean page may keep in Latin letters: names of products, formats, units and tools.
Shared by the unit check of every page (tests/unit/test_i18n.py) and the browser's
(tests/e2e/test_browser_korean.py), so one list says what counts as translated."""
NAMES = {"Demohub", "README", "SDK", "SDKs", "API", "Gradio", "Streamlit", "Docker", "Static", "zip", "tar", "gz",
         "CI", "Markdown", "English",  # a language selector names each language in itself
         "HTML", "iframe", "JSON", "URL", "UTC", "ms", "p95", "4xx", "5xx",  # formats, units, status classes
         "vCPU", "GPU",  # hardware units (the Hardware card of Settings)
         "Git"}  # the tool, by its name (the Git card of Settings)
