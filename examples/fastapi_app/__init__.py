"""A FastAPI app using asyncgen: see app.py."""
