"""`rnnkit serve DIR`: a local web page that shows a trained model at work, and its JSON API.

    lm.py      a generation token by token with every layer's state and gates; units that track text features
    views.py   the other tasks' results as JSON (classify, tag, translate, forecast, detect)
    app.py     the Starlette application on uvicorn: routes, bounds, the model's lock
    static/    the page: index.html, app.js, style.css (no CDN: it works offline)

It sits on top, beside the command line: it imports the tasks and the API, nothing imports it
but `rnnkit serve`. Needs the ``[serve]`` extra (starlette, uvicorn).
"""
