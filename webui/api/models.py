# The API has no tables of its own: tokens come from rest_framework.authtoken.
