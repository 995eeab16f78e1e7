/*
 * config_keys.h - the one table of configuration keys (X-macro). Each row
 * becomes an id (OSY_CFG_<ID>), a parser rule and a line of
 * docs/configuration.md; add a row here and everything else follows.
 *
 * Row: OSY_CFG(ID, "OPTSYNC_NAME", TYPE, "default", "min", "max",
 *              "used by", "doc sentence")
 *
 * TYPE is one of STRING, SECRET, INT, BOOL, ENUM, DURATION.
 * min/max are strings written the way a user would write the value, so the
 * docs can show them verbatim; "" means no bound:
 *   INT       "0", "65535"
 *   DURATION  "72h", "" (same syntax as values: 250ms, 5s, 2m, 1h, bare ms)
 *   ENUM      min = the allowed values "a|b|c" (matched case-insensitively,
 *             stored with the spelling given here), max = ""
 *   STRING, SECRET, BOOL: "", ""
 * The default of a SECRET is always "": secrets have no defaults.
 * Worker names in "used by": ac-ingest, sf-ingest, rules, sf-writer,
 * ac-writer, or "all". tests/unit/test_config.c checks every row (default
 * parses and is in range, bounds parse, doc present).
 *
 * No include guard on purpose: the includer defines OSY_CFG, includes this
 * file, then undefines it. Included without OSY_CFG, it expands to nothing.
 */
#ifdef OSY_CFG

/* ---- process ------------------------------------------------------------ */
OSY_CFG(LOG_LEVEL, "OPTSYNC_LOG_LEVEL", ENUM, "info", "debug|info|warn|error",
        "", "all", "Lowest level of the JSON log lines written to stderr.")
OSY_CFG(ADMIN_ADDR, "OPTSYNC_ADMIN_ADDR", STRING, "0.0.0.0", "", "", "all",
        "Address of the admin HTTP server (/healthz, /readyz, /metrics); "
        "0.0.0.0 so that kubelet probes and Prometheus reach the pod IP.")
OSY_CFG(ADMIN_PORT, "OPTSYNC_ADMIN_PORT", INT, "9090", "0", "65535", "all",
        "Port of the admin HTTP server; 0 picks a free port (tests).")
OSY_CFG(SHUTDOWN_GRACE, "OPTSYNC_SHUTDOWN_GRACE", DURATION, "25s", "1s", "10m",
        "all",
        "Time allowed after SIGTERM to drain in-flight work, commit and leave "
        "the consumer group; keep it below the pod's "
        "terminationGracePeriodSeconds (Kubernetes default 30 s).")

/* ---- Kafka -------------------------------------------------------------- */
OSY_CFG(KAFKA_BOOTSTRAP, "OPTSYNC_KAFKA_BOOTSTRAP", STRING, "127.0.0.1:9092",
        "", "", "all",
        "Kafka bootstrap servers, comma-separated host:port list.")
OSY_CFG(KAFKA_TOPIC_PREFIX, "OPTSYNC_KAFKA_TOPIC_PREFIX", STRING, "optsync", "",
        "", "all",
        "Prefix of every topic name: `optsync` gives `optsync.ac.events`, "
        "`optsync.dlq`, ...")
OSY_CFG(KAFKA_SECURITY_PROTOCOL, "OPTSYNC_KAFKA_SECURITY_PROTOCOL", ENUM,
        "plaintext", "plaintext|ssl|sasl_plaintext|sasl_ssl", "", "all",
        "Protocol to talk to the brokers (librdkafka security.protocol).")
OSY_CFG(KAFKA_SASL_MECHANISM, "OPTSYNC_KAFKA_SASL_MECHANISM", ENUM, "PLAIN",
        "PLAIN|SCRAM-SHA-256|SCRAM-SHA-512", "", "all",
        "SASL mechanism; used only with the sasl_* protocols.")
OSY_CFG(KAFKA_SASL_USERNAME, "OPTSYNC_KAFKA_SASL_USERNAME", STRING, "", "", "",
        "all", "SASL user name; required with the sasl_* protocols.")
OSY_CFG(KAFKA_SASL_PASSWORD, "OPTSYNC_KAFKA_SASL_PASSWORD", SECRET, "", "", "",
        "all", "SASL password; required with the sasl_* protocols.")
OSY_CFG(KAFKA_SSL_CA_LOCATION, "OPTSYNC_KAFKA_SSL_CA_LOCATION", STRING, "", "",
        "", "all",
        "File or directory of CA certificates for ssl/sasl_ssl; empty uses "
        "the system trust store.")
OSY_CFG(KAFKA_GROUP_ID, "OPTSYNC_KAFKA_GROUP_ID", STRING, "optsync-rules", "",
        "", "rules",
        "Consumer group id; every replica of one worker shares it.")
OSY_CFG(KAFKA_PRODUCE_TIMEOUT, "OPTSYNC_KAFKA_PRODUCE_TIMEOUT", DURATION, "5s",
        "100ms", "5m", "ac-ingest, sf-ingest, rules, sf-writer, ac-writer",
        "How long a produced message may wait for acks=all before it counts "
        "as failed (librdkafka message.timeout.ms).")

/* ---- Redis -------------------------------------------------------------- */
OSY_CFG(REDIS_HOST, "OPTSYNC_REDIS_HOST", STRING, "127.0.0.1", "", "",
        "sf-ingest, rules, sf-writer, ac-writer",
        "Redis server host name or IP.")
OSY_CFG(REDIS_PORT, "OPTSYNC_REDIS_PORT", INT, "6379", "1", "65535",
        "sf-ingest, rules, sf-writer, ac-writer", "Redis server port.")
OSY_CFG(REDIS_PASSWORD, "OPTSYNC_REDIS_PASSWORD", SECRET, "", "", "",
        "sf-ingest, rules, sf-writer, ac-writer",
        "Redis AUTH password; empty sends no AUTH.")
OSY_CFG(REDIS_DB, "OPTSYNC_REDIS_DB", INT, "0", "0", "15",
        "sf-ingest, rules, sf-writer, ac-writer",
        "Redis logical database number (SELECT).")
OSY_CFG(REDIS_KEY_PREFIX, "OPTSYNC_REDIS_KEY_PREFIX", STRING, "optsync", "", "",
        "sf-ingest, rules, sf-writer, ac-writer",
        "Prefix of every Redis key, so that several deployments can share "
        "one Redis.")
OSY_CFG(REDIS_CONNECT_TIMEOUT, "OPTSYNC_REDIS_CONNECT_TIMEOUT", DURATION, "2s",
        "100ms", "1m", "sf-ingest, rules, sf-writer, ac-writer",
        "Timeout of one TCP connect to Redis.")
OSY_CFG(REDIS_COMMAND_TIMEOUT, "OPTSYNC_REDIS_COMMAND_TIMEOUT", DURATION, "1s",
        "10ms", "1m", "sf-ingest, rules, sf-writer, ac-writer",
        "Timeout of one Redis command (or pipeline) round trip.")
OSY_CFG(DEDUP_TTL, "OPTSYNC_DEDUP_TTL", DURATION, "80h", "72h", "720h", "rules",
        "Least lifetime of an event's dedup entry; must outlast Salesforce "
        "CDC's 72 h replay window so that a replayed event is still "
        "recognised.")

/* ---- HTTP (AC, SF, webhooks) -------------------------------------------- */
OSY_CFG(HTTP_CONNECT_TIMEOUT, "OPTSYNC_HTTP_CONNECT_TIMEOUT", DURATION, "5s",
        "100ms", "2m", "sf-ingest, rules, sf-writer, ac-writer",
        "Timeout of the TCP and TLS connect of one outgoing HTTP request.")
OSY_CFG(HTTP_TIMEOUT, "OPTSYNC_HTTP_TIMEOUT", DURATION, "30s", "1s", "10m",
        "sf-ingest, rules, sf-writer, ac-writer",
        "Timeout of one whole outgoing HTTP request, connect included.")
OSY_CFG(HTTP_MAX_BODY, "OPTSYNC_HTTP_MAX_BODY", INT, "8388608", "1024",
        "1073741824", "ac-ingest, sf-ingest, rules, sf-writer, ac-writer",
        "Largest HTTP body accepted, in bytes (8 MiB): incoming webhooks and "
        "API responses above it are refused, not buffered.")

/* ---- retries ------------------------------------------------------------ */
OSY_CFG(RETRY_BASE, "OPTSYNC_RETRY_BASE", DURATION, "200ms", "1ms", "1m",
        "rules, sf-writer, ac-writer",
        "First backoff delay; it doubles on every attempt, with jitter.")
OSY_CFG(RETRY_MAX_DELAY, "OPTSYNC_RETRY_MAX_DELAY", DURATION, "60s", "1ms",
        "1h", "rules, sf-writer, ac-writer",
        "Cap on one backoff delay; not below OPTSYNC_RETRY_BASE.")
OSY_CFG(RETRY_MAX_ATTEMPTS, "OPTSYNC_RETRY_MAX_ATTEMPTS", INT, "10", "1",
        "1000", "rules, sf-writer, ac-writer",
        "Attempts (the first included) before a retryable failure goes to "
        "the DLQ. Attempts refused by a rate limit (429, quota) do not "
        "count: those end only at OPTSYNC_RETRY_MAX_AGE.")
OSY_CFG(RETRY_MAX_AGE, "OPTSYNC_RETRY_MAX_AGE", DURATION, "24h", "1m", "168h",
        "rules, sf-writer, ac-writer",
        "Age after which a still-failing message goes to the DLQ, whatever "
        "its attempt count.")
OSY_CFG(RETRY_AFTER_CAP, "OPTSYNC_RETRY_AFTER_CAP", DURATION, "5m", "1s", "1h",
        "rules, sf-writer, ac-writer",
        "Longest Retry-After hint honoured; a longer hint is cut to this.")

/* ---- rate limits (shared by all replicas through Redis) ------------------ */
OSY_CFG(AC_RATE_PER_SECOND, "OPTSYNC_AC_RATE_PER_SECOND", INT, "5", "1", "1000",
        "rules, ac-writer",
        "ActiveCampaign API calls per second, per AC account, across every "
        "replica (AC documents 5 per second per account).")
OSY_CFG(AC_RATE_BURST, "OPTSYNC_AC_RATE_BURST", INT, "5", "1", "1000",
        "rules, ac-writer",
        "ActiveCampaign calls allowed at once after an idle period.")
OSY_CFG(SF_RATE_PER_SECOND, "OPTSYNC_SF_RATE_PER_SECOND", INT, "25", "1",
        "1000", "sf-ingest, sf-writer",
        "Salesforce API calls per second, per org, across every replica.")
OSY_CFG(SF_DAILY_RESERVE_PERCENT, "OPTSYNC_SF_DAILY_RESERVE_PERCENT", INT, "20",
        "0", "90", "sf-ingest, sf-writer",
        "Share of the org's daily API allowance that optsync leaves unused "
        "for other integrations.")

/* ---- rules -------------------------------------------------------------- */
OSY_CFG(SYNC_ALL_CONTACTS, "OPTSYNC_SYNC_ALL_CONTACTS", BOOL, "false", "", "",
        "rules",
        "Sync every contact that exists in both AC and SF, not only the "
        "qualified ones (tagged by the AC-Salesforce integration).")
OSY_CFG(RULES_BATCH_SIZE, "OPTSYNC_RULES_BATCH_SIZE", INT, "1000", "1", "10000",
        "rules",
        "Most events the rules worker decides together: one Redis round trip "
        "reads, one writes, for the whole batch.")
OSY_CFG(RULES_BATCH_WAIT, "OPTSYNC_RULES_BATCH_WAIT", DURATION, "5ms", "1ms",
        "1s", "rules",
        "Longest wait, after the first event, for a batch to fill before it "
        "is decided (latency against fewer round trips).")
OSY_CFG(RULES_STATE_TTL, "OPTSYNC_RULES_STATE_TTL", DURATION, "720h", "72h",
        "8760h", "rules",
        "Lifetime of a person's cached state (active AC lists, tags, last "
        "applied version) after its last change; must outlast the 72 h "
        "replay window so that a replayed old event is still seen as "
        "stale, and be at least OPTSYNC_DEDUP_TTL (the worker refuses to "
        "start otherwise).")
OSY_CFG(RULES_SESSION_TIMEOUT, "OPTSYNC_RULES_SESSION_TIMEOUT", DURATION, "45s",
        "1s", "5m", "rules",
        "Consumer-group session timeout of the rules worker: how soon the "
        "group notices a member that died and hands its partitions over "
        "(heartbeats every tenth of it; the broker's "
        "group.min/max.session.timeout.ms bound it).")
OSY_CFG(AC_LOOKUP_TIMEOUT, "OPTSYNC_AC_LOOKUP_TIMEOUT", DURATION, "5s", "100ms",
        "5m", "rules",
        "Longest an AC look-up (filling a cache miss) waits for a token of "
        "the shared AC rate limit; then it is retried later with backoff.")

/* ---- ac-ingest (AC webhook receiver) ------------------------------------ */
OSY_CFG(INGEST_LISTEN_ADDR, "OPTSYNC_INGEST_LISTEN_ADDR", STRING, "0.0.0.0", "",
        "", "ac-ingest",
        "Address the webhook receiver listens on (IPv4 or IPv6 literal).")
OSY_CFG(INGEST_PORT, "OPTSYNC_INGEST_PORT", INT, "8080", "0", "65535",
        "ac-ingest",
        "Port of the webhook receiver (routes /webhooks/ac/<tenant>/<token>); "
        "0 picks a free port (tests).")
OSY_CFG(INGEST_THREADS, "OPTSYNC_INGEST_THREADS", INT, "2", "1", "256",
        "ac-ingest",
        "Threads of the webhook receiver, each with its own epoll loop; a "
        "request waiting for Kafka is suspended and holds no thread, so "
        "about one per core is enough.")
OSY_CFG(INGEST_MAX_CONNECTIONS, "OPTSYNC_INGEST_MAX_CONNECTIONS", INT, "4096",
        "16", "1000000", "ac-ingest",
        "Most webhook connections open at once; more are refused at accept.")
OSY_CFG(INGEST_MAX_BODY, "OPTSYNC_INGEST_MAX_BODY", INT, "262144", "1024",
        "67108864", "ac-ingest",
        "Largest webhook body accepted, in bytes; a larger one gets 413 "
        "(AC sends a few KB per event).")
OSY_CFG(INGEST_ACK_TIMEOUT, "OPTSYNC_INGEST_ACK_TIMEOUT", DURATION, "2s",
        "10ms", "60s", "ac-ingest",
        "How long a webhook waits for Kafka's delivery report; after it the "
        "event goes to the local spool (fsync) and AC still gets 200.")
OSY_CFG(INGEST_LINGER, "OPTSYNC_INGEST_LINGER", DURATION, "2ms", "0ms", "1s",
        "ac-ingest",
        "How long the producer gathers webhooks into one Kafka request "
        "(librdkafka linger.ms); each webhook waits for its batch's acks, so "
        "this is latency traded for fewer requests.")
OSY_CFG(INGEST_SPOOL_DIR, "OPTSYNC_INGEST_SPOOL_DIR", STRING,
        "/var/lib/optsync/ac-ingest", "", "", "ac-ingest",
        "Directory of the durable spool that keeps acknowledged events while "
        "Kafka is unreachable; use a persistent volume, one per replica.")
OSY_CFG(INGEST_SPOOL_MAX_BYTES, "OPTSYNC_INGEST_SPOOL_MAX_BYTES", INT,
        "1073741824", "65536", "1099511627776", "ac-ingest",
        "Size cap of the spool file; when Kafka is down and the spool is "
        "full, webhooks get 503.")
OSY_CFG(INGEST_PUBLIC_URL, "OPTSYNC_INGEST_PUBLIC_URL", STRING, "", "", "",
        "ac-ingest",
        "Base URL at which AC reaches this receiver "
        "(https://ingest.example.com); `ac-ingest register` appends "
        "/webhooks/ac/<tenant>/<token> to it.")

/* ---- writers (sf-writer, ac-writer) -------------------------------------- */
OSY_CFG(SF_WRITER_GROUP_ID, "OPTSYNC_SF_WRITER_GROUP_ID", STRING,
        "optsync-sf-writer", "", "", "sf-writer",
        "Consumer group of the sf-writer replicas (optsync.sf.commands).")
OSY_CFG(AC_WRITER_GROUP_ID, "OPTSYNC_AC_WRITER_GROUP_ID", STRING,
        "optsync-ac-writer", "", "", "ac-writer",
        "Consumer group of the ac-writer replicas (optsync.ac.commands).")
OSY_CFG(WRITER_SESSION_TIMEOUT, "OPTSYNC_WRITER_SESSION_TIMEOUT", DURATION,
        "45s", "1s", "5m", "sf-writer, ac-writer",
        "Consumer-group session timeout of the writers: how soon the group "
        "notices a replica that died and hands its partitions over "
        "(heartbeats every tenth of it).")
OSY_CFG(WRITER_BATCH_MAX, "OPTSYNC_WRITER_BATCH_MAX", INT, "1000", "1", "10000",
        "sf-writer, ac-writer",
        "Most commands one writer batch takes; sf-writer sends a batch's "
        "records in calls of 200.")
OSY_CFG(WRITER_LINGER, "OPTSYNC_WRITER_LINGER", DURATION, "500ms", "0", "10s",
        "sf-writer, ac-writer",
        "How long a writer waits for more commands before it starts a batch "
        "that is not full (fewer, fuller calls against a little latency).")
OSY_CFG(WRITER_MAX_PENDING, "OPTSYNC_WRITER_MAX_PENDING", INT, "20000", "100",
        "1000000", "sf-writer, ac-writer",
        "Commands a writer holds in memory (waiting, retrying); above it, "
        "consumption pauses until half of them are finished.")
OSY_CFG(WRITER_APPLIED_TTL, "OPTSYNC_WRITER_APPLIED_TTL", DURATION, "168h",
        "1h", "720h", "sf-writer, ac-writer",
        "Lifetime of the per-person Redis marker of the last applied command "
        "version, which lets a writer skip a replayed or stale command.")
OSY_CFG(SF_RECORD_CACHE_TTL, "OPTSYNC_SF_RECORD_CACHE_TTL", DURATION, "1h",
        "1s", "168h", "sf-writer",
        "Lifetime of the cached ids of a person's Contacts and unconverted "
        "Leads; a deleted or converted record refreshes it early.")
OSY_CFG(SF_LOOKUP_CHUNK, "OPTSYNC_SF_LOOKUP_CHUNK", INT, "500", "1", "2000",
        "sf-writer",
        "Most emails in one SOQL `Email IN (...)` lookup; a query is also cut "
        "to keep its URL under 15,000 bytes.")
OSY_CFG(SF_QUOTA_PROBE_INTERVAL, "OPTSYNC_SF_QUOTA_PROBE_INTERVAL", DURATION,
        "60s", "1s", "1h", "sf-writer",
        "While the org's daily allowance is down to the reserve (or "
        "exhausted), how often sf-writer checks GET /limits before it "
        "resumes.")
OSY_CFG(AC_BULK_THRESHOLD, "OPTSYNC_AC_BULK_THRESHOLD", INT, "50", "0",
        "1000000", "ac-writer",
        "Due ac-writer commands of one tenant from which bulk import (250 "
        "contacts per call) replaces one call per list; 0 disables bulk "
        "import.")
OSY_CFG(AC_BULK_POLL_INTERVAL, "OPTSYNC_AC_BULK_POLL_INTERVAL", DURATION, "2s",
        "100ms", "5m", "ac-writer",
        "How often ac-writer asks GET /import/info whether a bulk import has "
        "finished; its commands count as done only then.")
OSY_CFG(AC_BULK_RATE_PER_MINUTE, "OPTSYNC_AC_BULK_RATE_PER_MINUTE", INT, "100",
        "1", "1000", "ac-writer",
        "Multi-contact bulk import requests per minute per AC account, "
        "across replicas (AC's own limit is 100).")

/* ---- sf-ingest (Salesforce CDC / polling) -------------------------------- */
OSY_CFG(SF_INGEST_MODE, "OPTSYNC_SF_INGEST_MODE", ENUM, "cdc", "cdc|poll", "",
        "sf-ingest",
        "Where Salesforce changes come from: `cdc` follows Change Data "
        "Capture over CometD (with polling as the safety net), `poll` only "
        "polls SOQL on SystemModstamp.")
OSY_CFG(SF_POLL_INTERVAL, "OPTSYNC_SF_POLL_INTERVAL", DURATION, "30s", "1s",
        "1h", "sf-ingest",
        "Pause between two polls in poll mode, and in cdc mode while CDC is "
        "down (see OPTSYNC_SF_CDC_FALLBACK_AFTER).")
OSY_CFG(SF_POLL_OVERLAP, "OPTSYNC_SF_POLL_OVERLAP", DURATION, "60s", "0", "1h",
        "sf-ingest",
        "Each poll re-reads records modified this long before its watermark "
        "(commit lag, equal timestamps); what it re-reads unchanged is not "
        "published again.")
OSY_CFG(SF_CDC_SAFETY_POLL, "OPTSYNC_SF_CDC_SAFETY_POLL", DURATION, "15m", "0",
        "24h", "sf-ingest",
        "In cdc mode, poll this often anyway, to catch what CDC silently "
        "missed; 0 turns it off.")
OSY_CFG(SF_CDC_FALLBACK_AFTER, "OPTSYNC_SF_CDC_FALLBACK_AFTER", DURATION, "2m",
        "1s", "1h", "sf-ingest",
        "In cdc mode, once CDC has not been subscribed for this long, poll "
        "every OPTSYNC_SF_POLL_INTERVAL until it is again.")
OSY_CFG(SF_CDC_REPLAY_START, "OPTSYNC_SF_CDC_REPLAY_START", ENUM, "tip",
        "tip|earliest", "", "sf-ingest",
        "Where a channel with no stored replay id starts: `tip` (new events "
        "only, replay -1) or `earliest` (every retained event, -2).")
OSY_CFG(SF_CDC_TIMEOUT_MARGIN, "OPTSYNC_SF_CDC_TIMEOUT_MARGIN", DURATION, "10s",
        "100ms", "5m", "sf-ingest",
        "Added to the server's advice.timeout (110 s at Salesforce) to give "
        "up on a CometD long-poll that never answers.")
OSY_CFG(SF_CDC_BACKOFF_BASE, "OPTSYNC_SF_CDC_BACKOFF_BASE", DURATION, "1s",
        "10ms", "1m", "sf-ingest",
        "First delay before reconnecting CometD (or retrying a failed poll "
        "or batch); it doubles on each failure, with jitter.")
OSY_CFG(SF_CDC_BACKOFF_MAX, "OPTSYNC_SF_CDC_BACKOFF_MAX", DURATION, "60s",
        "10ms", "1h", "sf-ingest", "Cap on the CometD reconnect delay.")
OSY_CFG(SF_INGEST_STATE_TTL, "OPTSYNC_SF_INGEST_STATE_TTL", DURATION, "720h",
        "1h", "8760h", "sf-ingest",
        "Lifetime in Redis of a record's last known opt-out and email "
        "(renewed on every change); the email saves a lookup per CDC update.")
OSY_CFG(SF_INGEST_LEASE, "OPTSYNC_SF_INGEST_LEASE", DURATION, "15s", "3s", "5m",
        "sf-ingest",
        "Per-tenant lease in Redis that lets several sf-ingest replicas run: "
        "only the holder follows a tenant's CDC and polls, renewing every "
        "third of this; it stops a fifth of it before the lease could "
        "expire, and a standby takes over a crashed holder's tenants "
        "within about this long.")

/* ---- tenants ------------------------------------------------------------ */
OSY_CFG(TENANTS_FILE, "OPTSYNC_TENANTS_FILE", STRING, "", "", "",
        "ac-ingest, sf-ingest, rules, sf-writer, ac-writer",
        "Path of the per-tenant credentials file (AC and SF), e.g. a mounted "
        "Kubernetes Secret; required by the workers that call AC or SF.")

#endif /* OSY_CFG */
