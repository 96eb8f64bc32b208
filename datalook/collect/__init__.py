"""The browser SDK: POST /collect (site keys, CORS, cookieless visitors, bots) and its script."""
