"""adaptrec: adaptive recommendations for learning platforms. The Flask app is app.factory.create_app."""
