"""`selnet generate NAME`: a module for a service's declared network needs, decided on its base
before it is written."""
