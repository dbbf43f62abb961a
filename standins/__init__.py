"""Stand-ins for what surrounds the service, shared by the tests, the benches and the examples
(as a broker library ships its stub broker): an OpenAI-compatible model server speaking the
real wire protocol, the documents people upload (hostile ones too), and a client that asks and
reads answers as a browser does. Nothing of the service imports them."""
