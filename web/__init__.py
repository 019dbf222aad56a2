"""The web app: the partner's form, the Sales and Commerce pages, the JSON API."""
