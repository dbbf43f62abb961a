"""The API's signed tokens: what signing in (usecases/signin.py) earns a caller."""
