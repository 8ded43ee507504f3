"""Errors a query raises for the API to turn into a 400 naming the parameter."""


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
