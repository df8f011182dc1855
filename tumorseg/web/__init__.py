"""Web: the browser page that segments a scan on the user's own machine (`tumorseg export format=web`, `tumorseg
serve`). It owns the page's assets (its own HTML and ES modules in page/, the npm files `make web-vendor` copies into
vendor/), writing a page folder (the page, the vendor files, the model as ONNX and the model.json that states how the
page must run it) and serving one on 127.0.0.1 (page_folder, server).
May import: every stage below training (files, data, volumes, models, inference, scoring, writers), tumorseg.errors.
"""
