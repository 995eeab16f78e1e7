/*
 * sf_soql.c - the SOQL subset the simulator answers: a tokenizer and
 * recursive-descent parser with Salesforce's escape rules, type checks and
 * caret-pointer error messages, plus row matching and ORDER BY comparison.
 */
#include "sf_internal.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_type {
        TK_EOF,
        TK_IDENT,
        TK_STRING, /* start/len cover the quotes */
        TK_LIT,    /* unquoted literal starting with a digit */
        TK_COMMA,
        TK_LPAREN,
        TK_RPAREN,
        TK_OP
};

struct tok {
        enum tok_type type;
        size_t start, len;
};

enum op {
        OP_EQ,
        OP_NE,
        OP_LT,
        OP_LE,
        OP_GT,
        OP_GE
};

enum xkind {
        X_AND,
        X_OR,
        X_NOT,
        X_CMP,
        X_IN,
        X_LIKE
};

struct sf_soql_expr {
        enum xkind kind;
        struct sf_soql_expr *a, *b;
        int field;
        enum op op;
        int negated; /* NOT IN */
        struct sf_value *vals;
        size_t nvals;
};

struct parser {
        const char *q;
        size_t qlen;
        struct tok *toks;
        size_t ntoks, pos;
        struct sf_soql_error *err;
        struct sf_soql *s;
};

/* ---- errors -------------------------------------------------------------- */

/* Salesforce prints the query, a caret under the bad spot, the row and
 * column, then the detail:  "\nSELECT Foo FROM Contact\n       ^\nERROR at
 * Row:1:Column:8\nNo such column 'Foo' ...". Long queries are shown as a
 * window around the error so the message stays bounded. */
static void perr(struct parser *p, size_t at, const char *code, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

static void perr(struct parser *p, size_t at, const char *code, const char *fmt,
                 ...)
{
        char detail[400];
        size_t from = at > 100 ? at - 100 : 0;
        size_t to   = at + 100 < p->qlen ? at + 100 : p->qlen;
        va_list ap;
        int n;

        if (p->err->code[0])
                return; /* keep the first error */
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
        snprintf(p->err->code, sizeof(p->err->code), "%s", code);
        n = snprintf(p->err->message, sizeof(p->err->message), "\n%.*s\n%*s^",
                     (int)(to - from), p->q + from, (int)(at - from), "");
        if (n > 0 && (size_t)n < sizeof(p->err->message))
                snprintf(p->err->message + n,
                         sizeof(p->err->message) - (size_t)n,
                         "\nERROR at Row:1:Column:%zu\n%s", at + 1, detail);
}

/* ---- tokenizer ----------------------------------------------------------- */

static int tokenize(struct parser *p)
{
        size_t i = 0, cap = 16;
        const char *q = p->q;

        p->toks = sf_xcalloc(cap, sizeof(*p->toks));
        for (;;) {
                struct tok t = {TK_EOF, 0, 0};

                while (i < p->qlen && isspace((unsigned char)q[i]))
                        i++;
                t.start = i;
                if (i >= p->qlen) {
                        t.type = TK_EOF;
                } else if (isalpha((unsigned char)q[i]) || q[i] == '_') {
                        while (i < p->qlen && (isalnum((unsigned char)q[i]) ||
                                               q[i] == '_' || q[i] == '.'))
                                i++;
                        t.type = TK_IDENT;
                        /* literals starting with a digit: numbers, dates,
                         * dateTimes (with their ':', '.', '+' and '-') */
                } else if (isdigit((unsigned char)q[i])) {
                        while (i < p->qlen &&
                               (isalnum((unsigned char)q[i]) || q[i] == ':' ||
                                q[i] == '.' || q[i] == '+' || q[i] == '-'))
                                i++;
                        t.type = TK_LIT;
                } else if (q[i] == '\'') {
                        /* find the closing quote; a backslash escapes the
                         * next char (validated later, with context) */
                        i++;
                        while (i < p->qlen && q[i] != '\'') {
                                if (q[i] == '\\' && i + 1 < p->qlen)
                                        i++;
                                i++;
                        }
                        if (i >= p->qlen) {
                                perr(p, p->qlen, "MALFORMED_QUERY",
                                     "line 1:%zu mismatched character "
                                     "'<EOF>' expecting '''",
                                     p->qlen);
                                return -1;
                        }
                        i++;
                        t.type = TK_STRING;
                } else if (q[i] == ',') {
                        i++;
                        t.type = TK_COMMA;
                } else if (q[i] == '(') {
                        i++;
                        t.type = TK_LPAREN;
                } else if (q[i] == ')') {
                        i++;
                        t.type = TK_RPAREN;
                } else if (q[i] == '=') {
                        i++;
                        t.type = TK_OP;
                } else if ((q[i] == '!' && i + 1 < p->qlen &&
                            q[i + 1] == '=') ||
                           (q[i] == '<' && i + 1 < p->qlen &&
                            (q[i + 1] == '>' || q[i + 1] == '=')) ||
                           (q[i] == '>' && i + 1 < p->qlen &&
                            q[i + 1] == '=')) {
                        i += 2;
                        t.type = TK_OP;
                } else if (q[i] == '<' || q[i] == '>') {
                        i++;
                        t.type = TK_OP;
                } else {
                        perr(p, i, "MALFORMED_QUERY",
                             "line 1:%zu no viable alternative at character "
                             "'%c'",
                             i, q[i]);
                        return -1;
                }
                t.len = i - t.start;
                if (p->ntoks == cap) {
                        cap *= 2;
                        p->toks = sf_xrealloc(p->toks, cap * sizeof(*p->toks));
                }
                p->toks[p->ntoks++] = t;
                if (t.type == TK_EOF)
                        return 0;
        }
}

/* The current token (EOF at the end, never past it). */
static const struct tok *peek(struct parser *p)
{
        return &p->toks[p->pos];
}

/* @returns 1 if @p t is the keyword @p kw (case-insensitive). */
static int is_kw(struct parser *p, const struct tok *t, const char *kw)
{
        return t->type == TK_IDENT && strlen(kw) == t->len &&
               !strncasecmp(p->q + t->start, kw, t->len);
}

/* Consume the keyword @p kw if it is next. */
static int accept_kw(struct parser *p, const char *kw)
{
        if (!is_kw(p, peek(p), kw))
                return 0;
        p->pos++;
        return 1;
}

/* Report the current token as Salesforce does: "unexpected token: X". */
static void unexpected(struct parser *p)
{
        const struct tok *t = peek(p);

        if (t->type == TK_EOF)
                perr(p, t->start, "MALFORMED_QUERY", "unexpected token: <EOF>");
        else
                perr(p, t->start, "MALFORMED_QUERY", "unexpected token: %.*s",
                     (int)t->len, p->q + t->start);
}

/* Require the keyword @p kw. */
static int expect_kw(struct parser *p, const char *kw)
{
        if (accept_kw(p, kw))
                return 0;
        unexpected(p);
        return -1;
}

/* ---- string literals ----------------------------------------------------- */

static size_t utf8_put(char *out, unsigned cp)
{
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
}

/* In LIKE patterns a literal %, _ or \ is kept escaped so the matcher can
 * tell it from a wildcard. */
static size_t put_char(char *out, char c, int like)
{
        if (like && (c == '%' || c == '_' || c == '\\')) {
                out[0] = '\\';
                out[1] = c;
                return 2;
        }
        out[0] = c;
        return 1;
}

/* The escape rules of SOQL string literals (see sf_internal.h). */
char *sf_soql_unescape(const char *in, size_t len, int like, char *bad,
                       size_t badsz)
{
        /* Escapes never grow the text: \uXXXX (6) -> at most 3 bytes, or
         * 2 when re-escaped for LIKE. */
        char *out = sf_xcalloc(1, len + 1);
        size_t o  = 0;

        for (size_t i = 0; i < len; i++) {
                char c = in[i], n;

                if (c != '\\') {
                        out[o++] = c;
                        continue;
                }
                if (i + 1 >= len) {
                        snprintf(bad, badsz, "\\");
                        goto fail;
                }
                n = in[++i];
                switch (n) {
                case 'n':
                case 'N':
                        out[o++] = '\n';
                        break;
                case 'r':
                case 'R':
                        out[o++] = '\r';
                        break;
                case 't':
                case 'T':
                        out[o++] = '\t';
                        break;
                case 'b':
                case 'B':
                        out[o++] = '\b';
                        break;
                case 'f':
                case 'F':
                        out[o++] = '\f';
                        break;
                case '"':
                case '\'':
                case '\\':
                        o += put_char(out + o, n, like);
                        break;
                case '%':
                case '_':
                        if (!like) {
                                snprintf(bad, badsz, "\\%c", n);
                                goto fail;
                        }
                        out[o++] = '\\';
                        out[o++] = n;
                        break;
                case 'u': {
                        unsigned cp = 0;

                        for (int k = 1; k <= 4; k++) {
                                int h = i + (size_t)k < len ? in[i + (size_t)k]
                                                            : -1;

                                if (h < 0 || !isxdigit(h)) {
                                        snprintf(bad, badsz, "\\u");
                                        goto fail;
                                }
                                cp = cp * 16 +
                                     (unsigned)(isdigit(h)
                                                    ? h - '0'
                                                    : tolower(h) - 'a' + 10);
                        }
                        if (cp == 0) {
                                snprintf(bad, badsz, "\\u0000");
                                goto fail;
                        }
                        i += 4;
                        if (cp < 0x80)
                                o += put_char(out + o, (char)cp, like);
                        else
                                o += utf8_put(out + o, cp);
                        break;
                }
                default:
                        snprintf(bad, badsz, "\\%c", n);
                        goto fail;
                }
        }
        out[o] = '\0';
        return out;
fail:
        free(out);
        return NULL;
}

/* LIKE: '%' any run, '_' one character, backslash for a literal. */
int sf_soql_like(const char *s, const char *pat)
{
        const char *star_p = NULL, *star_s = NULL;

        /* Greedy wildcard matching with one backtrack point per '%'. */
        while (*s) {
                if (*pat == '%') {
                        star_p = ++pat;
                        star_s = s;
                        continue;
                }
                if (*pat == '_' ||
                    (*pat == '\\' && pat[1] &&
                     tolower((unsigned char)pat[1]) ==
                         tolower((unsigned char)*s)) ||
                    (*pat && *pat != '\\' &&
                     tolower((unsigned char)*pat) ==
                         tolower((unsigned char)*s))) {
                        pat += *pat == '\\' ? 2 : 1;
                        s++;
                        continue;
                }
                if (!star_p)
                        return 0;
                pat = star_p;
                s   = ++star_s;
        }
        while (*pat == '%')
                pat++;
        return *pat == '\0';
}

/* ---- values -------------------------------------------------------------- */

static const char *type_name(enum sf_ftype t)
{
        switch (t) {
        case SF_T_BOOL:
                return "boolean";
        case SF_T_DATETIME:
                return "dateTime";
        case SF_T_DATE:
                return "date";
        case SF_T_ID:
                return "id";
        default:
                return "string";
        }
}

/* Parse one literal for @p field; @p like marks a LIKE pattern. */
static int parse_value(struct parser *p, int field, int like,
                       struct sf_value *v)
{
        const struct tok *t           = peek(p);
        const struct sf_field_def *fd = &sf_fields[field];
        const char *txt               = p->q + t->start;
        int quoted_type = fd->type == SF_T_ID || fd->type == SF_T_STRING ||
                          fd->type == SF_T_EMAIL;

        memset(v, 0, sizeof(*v));
        v->type = fd->type;
        /* null is allowed for every type */
        if (is_kw(p, t, "null")) {
                v->is_null = 1;
                p->pos++;
                return 0;
        }
        if (t->type != TK_STRING && t->type != TK_LIT && !is_kw(p, t, "true") &&
            !is_kw(p, t, "false")) {
                unexpected(p);
                return -1;
        }
        /* text and ids are quoted; booleans and dates are not */
        if (quoted_type != (t->type == TK_STRING)) {
                perr(p, t->start, "INVALID_QUERY_FILTER_OPERATOR",
                     "value of filter criterion for field '%s' must be of "
                     "type %s and should %sbe enclosed in quotes",
                     fd->name, type_name(fd->type), quoted_type ? "" : "not ");
                return -1;
        }
        if (t->type == TK_STRING) {
                char bad[16];
                char *s = sf_soql_unescape(txt + 1, t->len - 2, like, bad,
                                           sizeof(bad));

                if (!s) {
                        perr(p, t->start, "MALFORMED_QUERY",
                             "Invalid string literal '%.*s'. Illegal character "
                             "sequence '%s' in string literal.",
                             (int)(t->len - 2), txt + 1, bad);
                        return -1;
                }
                /* ids are normalised to 18 chars so comparisons are exact */
                if (fd->type == SF_T_ID && !like) {
                        char id[SF_ID_LEN + 1];

                        if (sf_id_normalize(s, id)) {
                                perr(p, t->start,
                                     "INVALID_QUERY_FILTER_OPERATOR",
                                     "invalid ID field: %s", s);
                                free(s);
                                return -1;
                        }
                        free(s);
                        s = sf_xstrdup(id);
                }
                v->s = s;
                p->pos++;
                return 0;
        }
        if (fd->type == SF_T_BOOL && t->type == TK_IDENT) {
                v->b = is_kw(p, t, "true");
                p->pos++;
                return 0;
        }
        if ((fd->type == SF_T_DATETIME &&
             !sf_datetime_parse(txt, t->len, &v->t)) ||
            (fd->type == SF_T_DATE && !sf_date_parse(txt, t->len, &v->t))) {
                p->pos++;
                return 0;
        }
        perr(p, t->start, "INVALID_QUERY_FILTER_OPERATOR",
             "value of filter criterion for field '%s' must be of type %s and "
             "should not be enclosed in quotes",
             fd->name, type_name(fd->type));
        return -1;
}

/* ---- expressions --------------------------------------------------------- */

static void expr_free(struct sf_soql_expr *x)
{
        if (!x)
                return;
        expr_free(x->a);
        expr_free(x->b);
        for (size_t i = 0; i < x->nvals; i++)
                free((char *)x->vals[i].s);
        free(x->vals);
        free(x);
}

/* A field name of the query's object, else INVALID_FIELD. */
static int parse_field(struct parser *p, int *field)
{
        const struct tok *t = peek(p);
        int f;

        if (t->type != TK_IDENT) {
                unexpected(p);
                return -1;
        }
        f = sf_field_lookup(p->s->entity, p->q + t->start, t->len);
        if (f < 0) {
                perr(p, t->start, "INVALID_FIELD",
                     "No such column '%.*s' on entity '%s'. If you are "
                     "attempting to use a custom field, be sure to append "
                     "the '__c' after the custom field name. Please "
                     "reference your WSDL or the describe call for the "
                     "appropriate names.",
                     (int)t->len, p->q + t->start,
                     sf_entity_name(p->s->entity));
                return -1;
        }
        *field = f;
        p->pos++;
        return 0;
}

static struct sf_soql_expr *parse_or(struct parser *p);

/* One condition: field, operator, literal(s), type-checked. */
static struct sf_soql_expr *parse_cond(struct parser *p)
{
        struct sf_soql_expr *x = sf_xcalloc(1, sizeof(*x));
        const struct sf_field_def *fd;
        size_t cap = 0, op_at;

        if (parse_field(p, &x->field))
                goto fail;
        fd    = &sf_fields[x->field];
        op_at = peek(p)->start;
        /* NOT IN is two keywords */
        if (is_kw(p, peek(p), "not") && is_kw(p, &p->toks[p->pos + 1], "in")) {
                p->pos += 2;
                x->negated = 1;
                x->kind    = X_IN;
        } else if (accept_kw(p, "in")) {
                x->kind = X_IN;
        } else if (accept_kw(p, "like")) {
                x->kind = X_LIKE;
                if (fd->type != SF_T_STRING && fd->type != SF_T_EMAIL &&
                    fd->type != SF_T_ID) {
                        perr(p, op_at, "INVALID_QUERY_FILTER_OPERATOR",
                             "invalid operator on %s field",
                             type_name(fd->type));
                        goto fail;
                }
                x->vals  = sf_xcalloc(1, sizeof(*x->vals));
                x->nvals = 1;
                if (peek(p)->type != TK_STRING) {
                        unexpected(p);
                        goto fail;
                }
                if (parse_value(p, x->field, 1, &x->vals[0]))
                        goto fail;
                return x;
        } else if (peek(p)->type == TK_OP) {
                const struct tok *t = peek(p);
                const char *o       = p->q + t->start;

                x->kind = X_CMP;
                if (t->len == 1 && o[0] == '=')
                        x->op = OP_EQ;
                else if (t->len == 2 && (o[0] == '!' || o[1] == '>'))
                        x->op = OP_NE;
                else if (t->len == 2 && o[0] == '<')
                        x->op = OP_LE;
                else if (t->len == 2)
                        x->op = OP_GE;
                else if (o[0] == '<')
                        x->op = OP_LT;
                else
                        x->op = OP_GT;
                p->pos++;
                /* booleans only compare for (in)equality */
                if (fd->type == SF_T_BOOL && x->op != OP_EQ && x->op != OP_NE) {
                        perr(p, op_at, "INVALID_QUERY_FILTER_OPERATOR",
                             "invalid operator on boolean field");
                        goto fail;
                }
                x->vals  = sf_xcalloc(1, sizeof(*x->vals));
                x->nvals = 1;
                if (parse_value(p, x->field, 0, &x->vals[0]))
                        goto fail;
                return x;
        } else {
                unexpected(p);
                goto fail;
        }
        /* IN ( v, v, ... ) */
        if (peek(p)->type != TK_LPAREN) {
                unexpected(p);
                goto fail;
        }
        p->pos++;
        for (;;) {
                if (x->nvals == cap) {
                        cap     = cap ? cap * 2 : 8;
                        x->vals = sf_xrealloc(x->vals, cap * sizeof(*x->vals));
                }
                if (parse_value(p, x->field, 0, &x->vals[x->nvals]))
                        goto fail;
                x->nvals++;
                if (peek(p)->type == TK_COMMA) {
                        p->pos++;
                        continue;
                }
                if (peek(p)->type == TK_RPAREN) {
                        p->pos++;
                        return x;
                }
                unexpected(p);
                goto fail;
        }
fail:
        expr_free(x);
        return NULL;
}

/* NOT, a parenthesised group, or a condition. */
static struct sf_soql_expr *parse_not(struct parser *p)
{
        if (accept_kw(p, "not")) {
                struct sf_soql_expr *x = sf_xcalloc(1, sizeof(*x));

                x->kind = X_NOT;
                x->a    = parse_not(p);
                if (!x->a) {
                        free(x);
                        return NULL;
                }
                return x;
        }
        if (peek(p)->type == TK_LPAREN) {
                struct sf_soql_expr *x;

                p->pos++;
                x = parse_or(p);
                if (!x)
                        return NULL;
                if (peek(p)->type != TK_RPAREN) {
                        unexpected(p);
                        expr_free(x);
                        return NULL;
                }
                p->pos++;
                return x;
        }
        return parse_cond(p);
}

/* One level of AND or OR: SOQL refuses to mix them without parentheses. */
static struct sf_soql_expr *parse_or(struct parser *p)
{
        struct sf_soql_expr *x = parse_not(p);
        int level_kind         = -1;

        while (x) {
                struct sf_soql_expr *n;
                int kind;

                if (is_kw(p, peek(p), "and"))
                        kind = X_AND;
                else if (is_kw(p, peek(p), "or"))
                        kind = X_OR;
                else
                        break;
                /* a OR b AND c is ambiguous to Salesforce: parentheses required
                 */
                if (level_kind >= 0 && kind != level_kind) {
                        unexpected(p);
                        expr_free(x);
                        return NULL;
                }
                level_kind = kind;
                p->pos++;
                n       = sf_xcalloc(1, sizeof(*n));
                n->kind = (enum xkind)kind;
                n->a    = x;
                n->b    = parse_not(p);
                x       = n;
                if (!n->b) {
                        expr_free(x);
                        return NULL;
                }
        }
        return x;
}

/* ---- query --------------------------------------------------------------- */

void sf_soql_free(struct sf_soql *s)
{
        if (!s)
                return;
        free(s->fields);
        expr_free(s->where);
        free(s);
}

/* The SELECT list is read before FROM names the object, so the names
 * are resolved afterwards (resolve_select_list). */
static int parse_select_list(struct parser *p, size_t *first, size_t *cnt)
{
        *first = p->pos;
        *cnt   = 0;
        for (;;) {
                if (peek(p)->type != TK_IDENT || is_kw(p, peek(p), "from")) {
                        unexpected(p);
                        return -1;
                }
                p->pos++;
                (*cnt)++;
                if (peek(p)->type != TK_COMMA)
                        return 0;
                p->pos++;
        }
}

/* Resolve the SELECT names against the object; duplicates refused. */
static int resolve_select_list(struct parser *p, size_t first, size_t cnt)
{
        struct sf_soql *s = p->s;
        size_t save       = p->pos;

        s->fields = sf_xcalloc(cnt, sizeof(*s->fields));
        p->pos    = first;
        for (size_t i = 0; i < cnt; i++) {
                int f;

                if (parse_field(p, &f))
                        return -1;
                for (size_t k = 0; k < s->field_cnt; k++)
                        if (s->fields[k] == f) {
                                perr(p, p->toks[p->pos - 1].start,
                                     "MALFORMED_QUERY",
                                     "duplicate field selected: %s",
                                     sf_fields[f].name);
                                return -1;
                        }
                s->fields[s->field_cnt++] = f;
                p->pos++; /* the comma (or FROM after the last) */
        }
        p->pos = save;
        return 0;
}

/* ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ... */
static int parse_order_by(struct parser *p)
{
        struct sf_soql *s = p->s;

        for (;;) {
                int f;

                if (s->order_cnt == SF_SOQL_MAX_ORDER) {
                        unexpected(p);
                        return -1;
                }
                if (parse_field(p, &f))
                        return -1;
                s->order[s->order_cnt].field      = f;
                s->order[s->order_cnt].desc       = 0;
                s->order[s->order_cnt].nulls_last = 0;
                if (accept_kw(p, "desc"))
                        s->order[s->order_cnt].desc = 1;
                else
                        (void)accept_kw(p, "asc");
                if (accept_kw(p, "nulls")) {
                        if (accept_kw(p, "last")) {
                                s->order[s->order_cnt].nulls_last = 1;
                        } else if (!accept_kw(p, "first")) {
                                unexpected(p);
                                return -1;
                        }
                }
                s->order_cnt++;
                if (peek(p)->type != TK_COMMA)
                        return 0;
                p->pos++;
        }
}

/* SELECT ... FROM ... [WHERE] [ORDER BY] [LIMIT], nothing after. */
struct sf_soql *sf_soql_parse(const char *q, struct sf_soql_error *err)
{
        struct parser p = {0};
        size_t first, cnt;
        const struct tok *t;
        int e;

        memset(err, 0, sizeof(*err));
        p.q        = q;
        p.qlen     = strlen(q);
        p.err      = err;
        p.s        = sf_xcalloc(1, sizeof(*p.s));
        p.s->limit = -1;
        if (tokenize(&p))
                goto fail;
        if (expect_kw(&p, "select") || parse_select_list(&p, &first, &cnt) ||
            expect_kw(&p, "from"))
                goto fail;
        t = peek(&p);
        if (t->type != TK_IDENT) {
                unexpected(&p);
                goto fail;
        }
        /* the object decides which field names exist */
        e = sf_entity_lookup(q + t->start, t->len);
        if (e < 0) {
                perr(&p, t->start, "INVALID_TYPE",
                     "sObject type '%.*s' is not supported. If you are "
                     "attempting to use a custom object, be sure to append "
                     "the '__c' after the entity name. Please reference your "
                     "WSDL or the describe call for the appropriate names.",
                     (int)t->len, q + t->start);
                goto fail;
        }
        p.s->entity = (enum sf_entity)e;
        p.pos++;
        if (resolve_select_list(&p, first, cnt))
                goto fail;
        if (accept_kw(&p, "where")) {
                p.s->where = parse_or(&p);
                if (!p.s->where)
                        goto fail;
        }
        if (accept_kw(&p, "order")) {
                if (expect_kw(&p, "by") || parse_order_by(&p))
                        goto fail;
        }
        /* LIMIT takes a non-negative integer */
        if (accept_kw(&p, "limit")) {
                char *end;
                long v;

                t = peek(&p);
                if (t->type != TK_LIT) {
                        unexpected(&p);
                        goto fail;
                }
                v = strtol(q + t->start, &end, 10);
                if (end != q + t->start + t->len || v < 0) {
                        unexpected(&p);
                        goto fail;
                }
                p.s->limit = v;
                p.pos++;
        }
        /* nothing may follow the last clause */
        if (peek(&p)->type != TK_EOF) {
                unexpected(&p);
                goto fail;
        }
        free(p.toks);
        return p.s;
fail:
        if (!err->code[0])
                unexpected(&p);
        free(p.toks);
        sf_soql_free(p.s);
        return NULL;
}

/* ---- evaluation ---------------------------------------------------------- */

/* Compare two non-null values of one type. Text compares ignore case
 * (Salesforce: all but case-sensitive unique fields); ids are exact. */
static int value_cmp(const struct sf_value *a, const struct sf_value *b)
{
        switch (a->type) {
        case SF_T_BOOL:
                return a->b - b->b;
        case SF_T_DATETIME:
        case SF_T_DATE:
                return a->t < b->t ? -1 : a->t > b->t;
        case SF_T_ID:
                return strcmp(a->s, b->s);
        default:
                return strcasecmp(a->s, b->s);
        }
}

/* Equality with SOQL's null semantics (null = null is true). */
static int value_eq(const struct sf_value *fv, const struct sf_value *lit)
{
        if (fv->is_null || lit->is_null)
                return fv->is_null && lit->is_null;
        return value_cmp(fv, lit) == 0;
}

/* Evaluate the WHERE tree for one row. */
static int expr_match(const struct sf_soql_expr *x, const struct sf_record *r)
{
        struct sf_value fv;

        switch (x->kind) {
        case X_AND:
                return expr_match(x->a, r) && expr_match(x->b, r);
        case X_OR:
                return expr_match(x->a, r) || expr_match(x->b, r);
        case X_NOT:
                return !expr_match(x->a, r);
        case X_IN:
                sf_record_get(r, (enum sf_field)x->field, &fv);
                for (size_t i = 0; i < x->nvals; i++)
                        if (value_eq(&fv, &x->vals[i]))
                                return !x->negated;
                return x->negated;
        case X_LIKE:
                sf_record_get(r, (enum sf_field)x->field, &fv);
                return !fv.is_null && sf_soql_like(fv.s, x->vals[0].s);
        case X_CMP:
                sf_record_get(r, (enum sf_field)x->field, &fv);
                if (x->op == OP_EQ)
                        return value_eq(&fv, &x->vals[0]);
                if (x->op == OP_NE)
                        return !value_eq(&fv, &x->vals[0]);
                /* ordering comparisons with null are false */
                if (fv.is_null || x->vals[0].is_null)
                        return 0;
                {
                        int c = value_cmp(&fv, &x->vals[0]);

                        switch (x->op) {
                        case OP_LT:
                                return c < 0;
                        case OP_LE:
                                return c <= 0;
                        case OP_GT:
                                return c > 0;
                        default:
                                return c >= 0;
                        }
                }
        }
        return 0;
}

/* @returns 1 if @p r is in the result (no WHERE: every row). */
int sf_soql_match(const struct sf_soql *s, const struct sf_record *r)
{
        return !s->where || expr_match(s->where, r);
}

int sf_soql_cmp(const struct sf_soql *s, const struct sf_record *a,
                const struct sf_record *b)
{
        for (size_t i = 0; i < s->order_cnt; i++) {
                struct sf_value va, vb;
                int c;

                sf_record_get(a, (enum sf_field)s->order[i].field, &va);
                sf_record_get(b, (enum sf_field)s->order[i].field, &vb);
                /* nulls sort first unless NULLS LAST */
                if (va.is_null || vb.is_null) {
                        if (va.is_null == vb.is_null)
                                continue;
                        /* nulls first unless NULLS LAST */
                        c = va.is_null ? -1 : 1;
                        return s->order[i].nulls_last ? -c : c;
                }
                c = value_cmp(&va, &vb);
                if (c)
                        return s->order[i].desc ? -c : c;
        }
        return 0;
}

/* Walk the top-level AND chain for an indexable equality. */
static int expr_hint(const struct sf_soql_expr *x, const struct sf_value **vals,
                     size_t *cnt)
{
        int f;

        if (!x)
                return -1;
        /* either side of an AND may carry the hint */
        if (x->kind == X_AND) {
                f = expr_hint(x->a, vals, cnt);
                return f >= 0 ? f : expr_hint(x->b, vals, cnt);
        }
        if ((x->kind != X_CMP && x->kind != X_IN) ||
            (x->field != SF_F_ID && x->field != SF_F_EMAIL))
                return -1;
        if ((x->kind == X_CMP && x->op == OP_EQ) ||
            (x->kind == X_IN && !x->negated)) {
                *vals = x->vals;
                *cnt  = x->nvals;
                return x->field;
        }
        return -1;
}

int sf_soql_hint(const struct sf_soql *s, const struct sf_value **vals,
                 size_t *cnt)
{
        return expr_hint(s->where, vals, cnt);
}
