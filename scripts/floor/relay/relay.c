/*
 * relay: the least a gateway can do. Reads each UDP datagram arriving on 127.0.0.1:UDPPORT and writes it to
 * the one TCP connection it accepts on 127.0.0.1:TCPPORT: a blocking recv and a blocking write, one thread,
 * no runtime.
 * With RESP and ANS it is also the least a gateway in `wait` reply mode can do: after each write it reads a
 * RESP-byte answer from the TCP connection (the MSRP 200) and sends an ANS-byte datagram back to the
 * datagram's source (the SIP 200), starting with the datagram's first 8 bytes.
 * Used by scripts/floor (see its main.go) to measure what this machine adds to any gateway's latency and
 * CPU per message.
 *
 *   cc -O2 -o /tmp/relay scripts/floor/relay/relay.c && /tmp/relay 17000 17001 [RESP ANS]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: relay UDPPORT TCPPORT [RESP ANS]\n");
		return 2;
	}
	int udp_port = atoi(argv[1]), tcp_port = atoi(argv[2]), one = 1;
	int resp = argc == 5 ? atoi(argv[3]) : 0, ans = argc == 5 ? atoi(argv[4]) : 0;
	if (argc == 5 && (resp < 0 || resp > 65536 || ans < 8 || ans > 65536)) {
		fprintf(stderr, "relay: RESP must be 0..65536 and ANS 8..65536\n");
		return 2;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int u = socket(AF_INET, SOCK_DGRAM, 0), l = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = htons(udp_port);
	if (bind(u, (struct sockaddr *)&a, sizeof a) != 0) {
		perror("bind UDP");
		return 1;
	}
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_port = htons(tcp_port);
	if (bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0) {
		perror("bind TCP");
		return 1;
	}
	int c = accept(l, NULL, NULL);
	if (c < 0) {
		perror("accept");
		return 1;
	}
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	static char b[65536], r[65536], out[65536];
	for (;;) {
		struct sockaddr_in src;
		socklen_t srclen = sizeof src;
		ssize_t n = recvfrom(u, b, sizeof b, 0, (struct sockaddr *)&src, &srclen);
		if (n <= 0)
			return 0;
		if (write(c, b, n) != n)
			return 0;
		if (argc != 5)
			continue;
		for (int got = 0; got < resp;) {
			ssize_t m = read(c, r + got, resp - got);
			if (m <= 0)
				return 0;
			got += m;
		}
		memcpy(out, b, n < 8 ? n : 8);
		if (sendto(u, out, ans, 0, (struct sockaddr *)&src, srclen) != ans)
			return 0;
	}
}
