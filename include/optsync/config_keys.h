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
        "Lifetime of the per-event dedup key; must outlast Salesforce CDC's "
        "72 h replay window so that a replayed event is still recognised.")

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
        "the DLQ.")
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

/* ---- tenants ------------------------------------------------------------ */
OSY_CFG(TENANTS_FILE, "OPTSYNC_TENANTS_FILE", STRING, "", "", "",
        "ac-ingest, sf-ingest, rules, sf-writer, ac-writer",
        "Path of the per-tenant credentials file (AC and SF), e.g. a mounted "
        "Kubernetes Secret; required by the workers that call AC or SF.")

#endif /* OSY_CFG */
