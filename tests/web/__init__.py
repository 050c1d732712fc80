"""Tests of the web view, the web form and the JSON API."""
