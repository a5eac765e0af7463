"""adaptrec: adaptive recommendations for learning platforms. The Flask app is app.api.factory.create_app."""
