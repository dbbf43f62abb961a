"""What the API and the workers share beyond the database: the job queue (Dramatiq on Redis),
the answers' event streams and the fleet's metrics; and the use cases' adapters to the world
outside: outgoing mail, sign-in codes and rate limits kept in Redis."""
