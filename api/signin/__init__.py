"""Sign-in and its guards, which only the API uses: tokens, e-mailed codes, mail, rate limits."""
