/*
 * s13_mme.fdx — a freeDiameter 1.2 extension that turns freeDiameterd into an MME sending
 * S13 ME-Identity-Check-Requests (3GPP TS 29.272 §5.3.1, §7.2.19/§7.2.20) to an EIR.
 *
 * Why it exists: eir-emulator's own Diameter code is tested against its own simulated MME;
 * a bug shared by both sides would hide. freeDiameter is an independent RFC 6733 stack with
 * its own parser, peer state machine and watchdog, so it checks the EIR from the outside.
 *
 * Loaded as   LoadExtension = "s13_mme.fdx" : "s13_mme.conf";
 * The conf file has one "key value" pair per line ('#' starts a comment):
 *   requests PATH        CSV lines "IMEI[,SV[,IMSI]]" (empty fields allowed, '#' comments);
 *                        an empty IMEI sends an ECR without Terminal-Information
 *   output PATH          result lines (TSV, see write_line() callers), flushed as they happen
 *   peer ID              Diameter identity whose OPEN state starts the run (eir.localdomain)
 *   dest_realm REALM     Destination-Realm (localdomain)
 *   dest_host ID         Destination-Host (omitted when not given)
 *   window N             outstanding requests at most (1)
 *   count N              0: each request once, one ANSWER line each;
 *                        N>0: bench mode, N requests cycling over the list, SUMMARY only
 *   start_delay_ms N     wait after OPEN before the first request (0)
 *   linger_ms N          wait after the last answer before shutting down (0)
 *   timeout_ms N         per-request answer timeout (5000)
 *   open_timeout_ms N    give up when the peer is not OPEN after this long (10000)
 *   shutdown 0|1         call fd_core_shutdown() when done (1); a DONE line is written either way
 *
 * Output lines (TSV): OPEN peer | ANSWER idx imei hbh e2e result-code exp-result-code equipment-status
 * latency-us origin flags-hex failed-avp(code/vendor or -) | TIMEOUT idx imei | SENT|RECV CER..DPA peer hbh e2e | PARSE_ERROR peer why |
 * ERROR text | SUMMARY key=value… | DONE.  -1 stands for an absent AVP.
 *
 * The dictionary objects are added only when the daemon's dictionary lacks them, so the
 * extension also loads next to dict_s6a / dict_dcca_3gpp style extensions.
 */
#include <freeDiameter/extension.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VENDOR_3GPP 10415
#define APP_S13 16777252
#define CMD_ECR 324

#define AVP_TERMINAL_INFORMATION 1401
#define AVP_IMEI 1402
#define AVP_SOFTWARE_VERSION 1403
#define AVP_EQUIPMENT_STATUS 1445

struct s13_request {
	char imei[32];
	char sv[8];
	char imsi[32];
};

static struct {
	char requests[1024];
	char output[1024];
	char peer[256];
	char dest_realm[256];
	char dest_host[256];
	long window;
	long count;
	long start_delay_ms;
	long linger_ms;
	long timeout_ms;
	long open_timeout_ms;
	int shutdown;
} conf;

static struct s13_request *reqs;
static size_t nreqs;

static FILE *out;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t window_sem;
static pthread_t runner;
static int runner_started;

static long *latencies_us; /* one slot per request; -1 when no answer */
static long answered, failed;

static struct dict_object *d_vendor, *d_app, *d_cmd_ecr;
static struct dict_object *d_term_info, *d_imei, *d_sv, *d_equip_status;
static struct dict_object *d_user_name, *d_auth_session_state, *d_vsai, *d_vendor_id, *d_auth_app_id;
static struct dict_object *d_dest_realm, *d_dest_host, *d_result_code, *d_exp_result, *d_exp_result_code;
static struct dict_object *d_failed_avp;
static struct fd_hook_hdl *hook_hdl;

struct inflight {
	long seq;
	size_t idx;
	struct timespec sent;
};

static void write_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void write_line(const char *fmt, ...)
{
	va_list ap;
	int cancel_state;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
	pthread_mutex_lock(&out_lock);
	if (out) {
		va_start(ap, fmt);
		vfprintf(out, fmt, ap);
		va_end(ap);
		fputc('\n', out);
		fflush(out);
	}
	pthread_mutex_unlock(&out_lock);
	pthread_setcancelstate(cancel_state, NULL);
}

static long elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (long)(b->tv_sec - a->tv_sec) * 1000000L + (b->tv_nsec - a->tv_nsec) / 1000L;
}

/* ------------------------------------------------------------------ configuration */

static void trim(char *s)
{
	char *e = s + strlen(s);
	while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
}

static int parse_conf(const char *path)
{
	char line[1200], key[64], val[1100];
	FILE *f;

	conf.window = 1;
	conf.timeout_ms = 5000;
	conf.open_timeout_ms = 10000;
	conf.shutdown = 1;
	snprintf(conf.peer, sizeof(conf.peer), "eir.localdomain");
	snprintf(conf.dest_realm, sizeof(conf.dest_realm), "localdomain");

	if (!path) {
		LOG_E("s13_mme: a configuration file is required");
		return EINVAL;
	}
	f = fopen(path, "r");
	if (!f) {
		LOG_E("s13_mme: cannot open %s: %s", path, strerror(errno));
		return errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		trim(line);
		val[0] = '\0';
		if (sscanf(line, " %63s %1099[^\n]", key, val) < 1)
			continue;
		if (!strcmp(key, "requests")) snprintf(conf.requests, sizeof(conf.requests), "%s", val);
		else if (!strcmp(key, "output")) snprintf(conf.output, sizeof(conf.output), "%s", val);
		else if (!strcmp(key, "peer")) snprintf(conf.peer, sizeof(conf.peer), "%s", val);
		else if (!strcmp(key, "dest_realm")) snprintf(conf.dest_realm, sizeof(conf.dest_realm), "%s", val);
		else if (!strcmp(key, "dest_host")) snprintf(conf.dest_host, sizeof(conf.dest_host), "%s", val);
		else if (!strcmp(key, "window")) conf.window = atol(val);
		else if (!strcmp(key, "count")) conf.count = atol(val);
		else if (!strcmp(key, "start_delay_ms")) conf.start_delay_ms = atol(val);
		else if (!strcmp(key, "linger_ms")) conf.linger_ms = atol(val);
		else if (!strcmp(key, "timeout_ms")) conf.timeout_ms = atol(val);
		else if (!strcmp(key, "open_timeout_ms")) conf.open_timeout_ms = atol(val);
		else if (!strcmp(key, "shutdown")) conf.shutdown = atoi(val);
		else {
			LOG_E("s13_mme: unknown key '%s' in %s", key, path);
			fclose(f);
			return EINVAL;
		}
	}
	fclose(f);
	if (conf.window < 1 || conf.count < 0 || !conf.requests[0] || !conf.output[0]) {
		LOG_E("s13_mme: need requests, output, window >= 1, count >= 0");
		return EINVAL;
	}
	return 0;
}

static int load_requests(void)
{
	char line[256];
	size_t cap = 16;
	FILE *f = fopen(conf.requests, "r");
	if (!f) {
		LOG_E("s13_mme: cannot open %s: %s", conf.requests, strerror(errno));
		return errno;
	}
	reqs = calloc(cap, sizeof(*reqs));
	while (reqs && fgets(line, sizeof(line), f)) {
		char *fields[3] = { "", "", "" };
		char *p = line;
		int i;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		trim(line);
		if (!line[0])
			continue;
		for (i = 0; i < 3 && p; i++) {
			char *comma = strchr(p, ',');
			if (comma)
				*comma = '\0';
			fields[i] = p;
			p = comma ? comma + 1 : NULL;
		}
		if (nreqs == cap) {
			cap *= 2;
			reqs = realloc(reqs, cap * sizeof(*reqs));
			if (!reqs)
				break;
		}
		snprintf(reqs[nreqs].imei, sizeof(reqs[nreqs].imei), "%s", fields[0]);
		snprintf(reqs[nreqs].sv, sizeof(reqs[nreqs].sv), "%s", fields[1]);
		snprintf(reqs[nreqs].imsi, sizeof(reqs[nreqs].imsi), "%s", fields[2]);
		nreqs++;
	}
	fclose(f);
	if (!reqs || !nreqs) {
		LOG_E("s13_mme: no requests in %s", conf.requests);
		return EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------------ dictionary */

static int avp_by_name(const char *name, struct dict_object **obj)
{
	return fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, name, obj, ENOENT);
}

/* A 3GPP AVP with the V and M bits required (TS 29.272 §7.3.1 table: "must" for both). */
static int s13_avp(avp_code_t code, char *name, enum dict_avp_basetype base, struct dict_object *type,
		   struct dict_object **obj)
{
	struct dict_avp_request req = { .avp_vendor = VENDOR_3GPP, .avp_code = code };
	struct dict_avp_data data = {
		.avp_code = code,
		.avp_vendor = VENDOR_3GPP,
		.avp_name = name,
		.avp_flag_mask = AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY,
		.avp_flag_val = AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY,
		.avp_basetype = base,
	};
	if (fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_CODE_AND_VENDOR, &req, obj, 0) == 0 && *obj)
		return 0;
	return fd_dict_new(fd_g_config->cnf_dict, DICT_AVP, &data, type, obj);
}

static int s13_dict_init(void)
{
	vendor_id_t vid = VENDOR_3GPP;
	application_id_t aid = APP_S13;
	command_code_t code = CMD_ECR;
	struct dict_object *utf8 = NULL, *cmd_eca = NULL;

	fd_dict_search(fd_g_config->cnf_dict, DICT_VENDOR, VENDOR_BY_ID, &vid, &d_vendor, 0);
	if (!d_vendor) {
		struct dict_vendor_data v = { .vendor_id = VENDOR_3GPP, .vendor_name = "3GPP" };
		CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_VENDOR, &v, NULL, &d_vendor));
	}
	fd_dict_search(fd_g_config->cnf_dict, DICT_APPLICATION, APPLICATION_BY_ID, &aid, &d_app, 0);
	if (!d_app) {
		struct dict_application_data a = { .application_id = APP_S13, .application_name = "S13" };
		CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_APPLICATION, &a, d_vendor, &d_app));
	}
	fd_dict_search(fd_g_config->cnf_dict, DICT_COMMAND, CMD_BY_CODE_R, &code, &d_cmd_ecr, 0);
	if (!d_cmd_ecr) {
		/* TS 29.272 §7.2.19/7.2.20: ECR has R and P set, ECA has P set. */
		struct dict_cmd_data c = {
			.cmd_code = CMD_ECR,
			.cmd_name = "ME-Identity-Check-Request",
			.cmd_flag_mask = CMD_FLAG_PROXIABLE | CMD_FLAG_REQUEST,
			.cmd_flag_val = CMD_FLAG_PROXIABLE | CMD_FLAG_REQUEST,
		};
		CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_COMMAND, &c, d_app, &d_cmd_ecr));
		c.cmd_name = "ME-Identity-Check-Answer";
		c.cmd_flag_val = CMD_FLAG_PROXIABLE;
		CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_COMMAND, &c, d_app, &cmd_eca));
	}

	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_TYPE, TYPE_BY_NAME, "UTF8String", &utf8, ENOENT));
	CHECK_FCT(s13_avp(AVP_IMEI, "IMEI", AVP_TYPE_OCTETSTRING, utf8, &d_imei));
	CHECK_FCT(s13_avp(AVP_SOFTWARE_VERSION, "Software-Version", AVP_TYPE_OCTETSTRING, utf8, &d_sv));
	CHECK_FCT(s13_avp(AVP_TERMINAL_INFORMATION, "Terminal-Information", AVP_TYPE_GROUPED, NULL, &d_term_info));
	CHECK_FCT(s13_avp(AVP_EQUIPMENT_STATUS, "Equipment-Status", AVP_TYPE_INTEGER32, NULL, &d_equip_status));

	/* RFC 6733 base AVPs, present in libfdproto's built-in dictionary. */
	CHECK_FCT(avp_by_name("User-Name", &d_user_name));
	CHECK_FCT(avp_by_name("Auth-Session-State", &d_auth_session_state));
	CHECK_FCT(avp_by_name("Vendor-Specific-Application-Id", &d_vsai));
	CHECK_FCT(avp_by_name("Vendor-Id", &d_vendor_id));
	CHECK_FCT(avp_by_name("Auth-Application-Id", &d_auth_app_id));
	CHECK_FCT(avp_by_name("Destination-Realm", &d_dest_realm));
	CHECK_FCT(avp_by_name("Destination-Host", &d_dest_host));
	CHECK_FCT(avp_by_name("Result-Code", &d_result_code));
	CHECK_FCT(avp_by_name("Experimental-Result", &d_exp_result));
	CHECK_FCT(avp_by_name("Experimental-Result-Code", &d_exp_result_code));
	CHECK_FCT(avp_by_name("Failed-AVP", &d_failed_avp));
	return 0;
}

/* ------------------------------------------------------------------ messages */

static int add_os(msg_or_avp *parent, struct dict_object *model, const char *s)
{
	struct avp *avp;
	union avp_value v = { .os = { .data = (uint8_t *)s, .len = strlen(s) } };
	CHECK_FCT(fd_msg_avp_new(model, 0, &avp));
	CHECK_FCT(fd_msg_avp_setvalue(avp, &v));
	return fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, avp);
}

static int add_u32(msg_or_avp *parent, struct dict_object *model, uint32_t u)
{
	struct avp *avp;
	union avp_value v = { .u32 = u };
	CHECK_FCT(fd_msg_avp_new(model, 0, &avp));
	CHECK_FCT(fd_msg_avp_setvalue(avp, &v));
	return fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, avp);
}

/* ECR AVPs in the order of the TS 29.272 §7.2.19 ABNF. */
static int build_ecr(const struct s13_request *r, struct msg **pmsg)
{
	struct msg *msg = NULL;
	struct avp *grp;

	CHECK_FCT(fd_msg_new(d_cmd_ecr, MSGFL_ALLOC_ETEID, &msg));
	CHECK_FCT(fd_msg_new_session(msg, (os0_t) "s13_mme", 7));
	CHECK_FCT(fd_msg_avp_new(d_vsai, 0, &grp));
	CHECK_FCT(add_u32(grp, d_vendor_id, VENDOR_3GPP));
	CHECK_FCT(add_u32(grp, d_auth_app_id, APP_S13));
	CHECK_FCT(fd_msg_avp_add(msg, MSG_BRW_LAST_CHILD, grp));
	CHECK_FCT(add_u32(msg, d_auth_session_state, 1 /* NO_STATE_MAINTAINED */));
	CHECK_FCT(fd_msg_add_origin(msg, 0));
	if (conf.dest_host[0])
		CHECK_FCT(add_os(msg, d_dest_host, conf.dest_host));
	CHECK_FCT(add_os(msg, d_dest_realm, conf.dest_realm));
	/* An empty IMEI field leaves Terminal-Information out: the EIR must answer 5005. */
	if (r->imei[0]) {
		CHECK_FCT(fd_msg_avp_new(d_term_info, 0, &grp));
		CHECK_FCT(add_os(grp, d_imei, r->imei));
		if (r->sv[0])
			CHECK_FCT(add_os(grp, d_sv, r->sv));
		CHECK_FCT(fd_msg_avp_add(msg, MSG_BRW_LAST_CHILD, grp));
	}
	if (r->imsi[0])
		CHECK_FCT(add_os(msg, d_user_name, r->imsi));
	*pmsg = msg;
	return 0;
}

/* Value of a top-level Integer32/Unsigned32 AVP, or -1. */
static long top_int(struct msg *msg, struct dict_object *model)
{
	struct avp *avp = NULL;
	struct avp_hdr *hdr = NULL;
	if (fd_msg_search_avp(msg, model, &avp) || !avp || fd_msg_avp_hdr(avp, &hdr) || !hdr->avp_value)
		return -1;
	return (long)hdr->avp_value->u32;
}

/* Experimental-Result-Code inside Experimental-Result (RFC 6733 §7.6), or -1. */
static long exp_result_code(struct msg *msg)
{
	struct avp *avp = NULL, *child = NULL;
	struct avp_hdr *hdr = NULL;
	if (fd_msg_search_avp(msg, d_exp_result, &avp) || !avp)
		return -1;
	if (fd_msg_browse(avp, MSG_BRW_FIRST_CHILD, &child, NULL))
		return -1;
	while (child) {
		if (!fd_msg_avp_hdr(child, &hdr) && hdr->avp_code == 298 && hdr->avp_vendor == 0 && hdr->avp_value)
			return (long)hdr->avp_value->u32;
		if (fd_msg_browse(child, MSG_BRW_NEXT, &child, NULL))
			return -1;
	}
	return -1;
}

/* "code/vendor" of the first AVP inside Failed-AVP (RFC 6733 §7.5), or "-". */
static void failed_avp(struct msg *msg, char *buf, size_t len)
{
	struct avp *avp = NULL, *child = NULL;
	struct avp_hdr *hdr = NULL;
	snprintf(buf, len, "-");
	if (fd_msg_search_avp(msg, d_failed_avp, &avp) || !avp)
		return;
	if (fd_msg_browse(avp, MSG_BRW_FIRST_CHILD, &child, NULL) || !child || fd_msg_avp_hdr(child, &hdr))
		return;
	snprintf(buf, len, "%u/%u", hdr->avp_code, (hdr->avp_flags & AVP_FLAG_VENDOR) ? hdr->avp_vendor : 0);
}

static void finish_one(struct inflight *fl, long latency, int ok)
{
	pthread_mutex_lock(&stats_lock);
	latencies_us[fl->seq] = latency;
	if (ok)
		answered++;
	else
		failed++;
	pthread_mutex_unlock(&stats_lock);
	free(fl);
	sem_post(&window_sem);
}

static void on_answer(void *data, struct msg **pmsg)
{
	struct inflight *fl = data;
	struct timespec now;
	struct msg_hdr *hdr = NULL;
	long rc, erc, status, latency;
	DiamId_t src = NULL;
	size_t srclen = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	latency = elapsed_us(&fl->sent, &now);
	fd_msg_hdr(*pmsg, &hdr);
	rc = top_int(*pmsg, d_result_code);
	erc = exp_result_code(*pmsg);
	status = top_int(*pmsg, d_equip_status);
	fd_msg_source_get(*pmsg, &src, &srclen);
	if (!conf.count) {
		char failed[32];
		failed_avp(*pmsg, failed, sizeof(failed));
		write_line("ANSWER\t%zu\t%s\t%u\t%u\t%ld\t%ld\t%ld\t%ld\t%.*s\t%02x\t%s", fl->idx,
			   reqs[fl->idx].imei, hdr ? hdr->msg_hbhid : 0, hdr ? hdr->msg_eteid : 0, rc, erc, status,
			   latency, src ? (int)srclen : 5, src ? (char *)src : "local", hdr ? hdr->msg_flags : 0, failed);
	}
	fd_msg_free(*pmsg);
	*pmsg = NULL;
	finish_one(fl, latency, 1);
}

static void on_expire(void *data, DiamId_t sentto, size_t senttolen, struct msg **pmsg)
{
	struct inflight *fl = data;
	(void)sentto;
	(void)senttolen;
	if (!conf.count)
		write_line("TIMEOUT\t%zu\t%s", fl->idx, reqs[fl->idx].imei);
	fd_msg_free(*pmsg);
	*pmsg = NULL;
	finish_one(fl, -1, 0);
}

/* ------------------------------------------------------------------ base protocol trace */

static const char *base_name(uint32_t code, int request)
{
	switch (code) {
	case 257: return request ? "CER" : "CEA";
	case 280: return request ? "DWR" : "DWA";
	case 282: return request ? "DPR" : "DPA";
	default: return NULL;
	}
}

/* Records CER/CEA, DWR/DWA and DPR/DPA in both directions, and parse errors: freeDiameter's own
 * view of the peer's conduct, which the test compares with the EIR's log. */
static void on_hook(enum fd_hook_type type, struct msg *msg, struct peer_hdr *peer, void *other,
		    struct fd_hook_permsgdata *pmd, void *regdata)
{
	struct msg_hdr *hdr = NULL;
	const char *name;
	(void)pmd;
	(void)regdata;
	if (type == HOOK_MESSAGE_PARSING_ERROR) {
		LOG_E("s13_mme: parsing error from %s: %s", peer ? peer->info.pi_diamid : "?",
		      other ? (char *)other : "?");
		write_line("PARSE_ERROR\t%s\t%s", peer ? peer->info.pi_diamid : "?", other ? (char *)other : "?");
		return;
	}
	if (!msg || fd_msg_hdr(msg, &hdr) || hdr->msg_appl != 0)
		return;
	name = base_name(hdr->msg_code, hdr->msg_flags & CMD_FLAG_REQUEST);
	if (!name)
		return;
	write_line("%s\t%s\t%s\t%u\t%u", type == HOOK_MESSAGE_SENT ? "SENT" : "RECV", name,
		   peer ? peer->info.pi_diamid : "?", hdr->msg_hbhid, hdr->msg_eteid);
}

/* ------------------------------------------------------------------ the run */

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static void write_summary(long total, long elapsed)
{
	long *sorted = malloc(sizeof(long) * (size_t)(total ? total : 1));
	long n = 0, i, p50 = -1, p99 = -1;
	for (i = 0; sorted && i < total; i++)
		if (latencies_us[i] >= 0)
			sorted[n++] = latencies_us[i];
	if (n) {
		qsort(sorted, (size_t)n, sizeof(long), cmp_long);
		/* nearest-rank percentiles */
		p50 = sorted[(n * 50 + 99) / 100 - 1];
		p99 = sorted[(n * 99 + 99) / 100 - 1];
	}
	write_line("SUMMARY\tsent=%ld\tanswered=%ld\tfailed=%ld\telapsed_us=%ld\trate=%.1f\tp50_us=%ld\tp99_us=%ld"
		   "\twindow=%ld",
		   total, answered, failed, elapsed, elapsed > 0 ? answered * 1e6 / (double)elapsed : 0.0, p50, p99,
		   conf.window);
	LOG_N("s13_mme: %ld ECR(s), window %ld: %ld answered in %ld us = %.1f/s, p50 %ld us, p99 %ld us", total,
	      conf.window, answered, elapsed, elapsed > 0 ? answered * 1e6 / (double)elapsed : 0.0, p50, p99);
	free(sorted);
}

static int wait_open(void)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct peer_hdr *peer = NULL;
		if (!fd_peer_getbyid(conf.peer, strlen(conf.peer), 1, &peer) && peer &&
		    fd_peer_get_state(peer) == STATE_OPEN)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (elapsed_us(&start, &now) / 1000 > conf.open_timeout_ms)
			return ETIMEDOUT;
		sleep_ms(10);
	}
}

static void *run(void *arg)
{
	long total = conf.count ? conf.count : (long)nreqs;
	long seq, i;
	struct timespec t0, t1;
	(void)arg;

	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	fd_core_waitstartcomplete();
	if (wait_open()) {
		write_line("ERROR\tpeer %s not OPEN after %ld ms", conf.peer, conf.open_timeout_ms);
		goto done;
	}
	write_line("OPEN\t%s", conf.peer);
	LOG_N("s13_mme: peer %s is OPEN, sending %ld ECR(s) with window %ld", conf.peer, total, conf.window);
	if (conf.start_delay_ms)
		sleep_ms(conf.start_delay_ms);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (seq = 0; seq < total; seq++) {
		struct msg *msg = NULL;
		struct inflight *fl;
		struct timespec deadline;
		size_t idx = (size_t)seq % nreqs;

		while (sem_wait(&window_sem) == -1 && errno == EINTR)
			;
		fl = calloc(1, sizeof(*fl));
		if (!fl || build_ecr(&reqs[idx], &msg)) {
			write_line("ERROR\tcannot build ECR %ld", seq);
			free(fl);
			if (msg)
				fd_msg_free(msg);
			latencies_us[seq] = -1;
			pthread_mutex_lock(&stats_lock);
			failed++;
			pthread_mutex_unlock(&stats_lock);
			sem_post(&window_sem);
			continue;
		}
		fl->seq = seq;
		fl->idx = idx;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += conf.timeout_ms / 1000;
		deadline.tv_nsec += (conf.timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		clock_gettime(CLOCK_MONOTONIC, &fl->sent);
		if (fd_msg_send_timeout(&msg, on_answer, fl, on_expire, &deadline)) {
			write_line("ERROR\tfd_msg_send failed for %ld", seq);
			if (msg)
				fd_msg_free(msg);
			finish_one(fl, -1, 0);
		}
	}
	/* Wait for the whole window to drain: every callback posts once. */
	for (i = 0; i < conf.window; i++)
		while (sem_wait(&window_sem) == -1 && errno == EINTR)
			;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	write_summary(total, elapsed_us(&t0, &t1));
	if (conf.linger_ms)
		sleep_ms(conf.linger_ms);
done:
	write_line("DONE");
	if (conf.shutdown)
		fd_core_shutdown();
	return NULL;
}

/* freeDiameter 1.2's peer thread reads, when it starts, whether the daemon has already started; if
 * so it delays the first connection by "random() % 4" s plus a fraction, and random() is unseeded:
 * 3.85 s every time. The thread is created while the conf file is parsed, before extensions load,
 * but on a busy machine it may not run before the daemon starts. Waiting here until it has left
 * STATE_NEW (it reads the flag first) makes the first connection attempt immediate. */
static void let_peer_thread_start(void)
{
	int i;
	for (i = 0; i < 1000; i++) {
		struct peer_hdr *peer = NULL;
		if (fd_peer_getbyid(conf.peer, strlen(conf.peer), 1, &peer) || !peer ||
		    fd_peer_get_state(peer) != STATE_NEW)
			return;
		sleep_ms(1);
	}
}

static int s13_mme_entry(char *conffile)
{
	long total;
	CHECK_FCT(parse_conf(conffile));
	CHECK_FCT(load_requests());
	CHECK_FCT(s13_dict_init());
	/* Advertised in CER as Vendor-Specific-Application-Id {10415, 16777252} (TS 29.272 §7.1.8). */
	CHECK_FCT(fd_disp_app_support(d_app, d_vendor, 1, 0));
	total = conf.count ? conf.count : (long)nreqs;
	latencies_us = malloc(sizeof(long) * (size_t)total);
	if (!latencies_us)
		return ENOMEM;
	out = fopen(conf.output, "w");
	if (!out) {
		LOG_E("s13_mme: cannot write %s: %s", conf.output, strerror(errno));
		return errno;
	}
	CHECK_FCT(fd_hook_register(HOOK_MASK(HOOK_MESSAGE_RECEIVED, HOOK_MESSAGE_SENT, HOOK_MESSAGE_PARSING_ERROR),
				   on_hook, NULL, NULL, &hook_hdl));
	CHECK_SYS(sem_init(&window_sem, 0, (unsigned)conf.window));
	CHECK_POSIX(pthread_create(&runner, NULL, run, NULL));
	runner_started = 1;
	let_peer_thread_start();
	return 0;
}

void fd_ext_fini(void)
{
	if (runner_started) {
		pthread_cancel(runner);
		pthread_join(runner, NULL);
	}
	if (hook_hdl)
		fd_hook_unregister(hook_hdl);
	pthread_mutex_lock(&out_lock);
	if (out)
		fclose(out);
	out = NULL;
	pthread_mutex_unlock(&out_lock);
}

EXTENSION_ENTRY("s13_mme", s13_mme_entry);
