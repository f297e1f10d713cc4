"""Web plumbing every room's HTTP faces share: the API's error answers, pagination, field
types and the template context. May call: records."""
