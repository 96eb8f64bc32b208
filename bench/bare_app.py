"""The baseline: a bare Flask endpoint that parses the same JSON body and answers 204."""

import orjson
from flask import Flask, Response, request

app = Flask(__name__)


@app.post("/event")
def event() -> Response:
    """Parse the body like /event does, store nothing, answer 204."""
    orjson.loads(request.get_data())
    return Response(status=204)
