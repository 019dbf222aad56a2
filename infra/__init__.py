"""What every process of the product runs on, beside the domain: the payload codec
(`encryption`), readiness (`health`), the links the worker emails and the web app serves
(`links`), log lines (`logs`) and traces (`tracing`)."""
