/*
 * relay: the least a gateway can do. Reads each UDP datagram arriving on 127.0.0.1:UDPPORT and writes it to
 * the one TCP connection it accepts on 127.0.0.1:TCPPORT: a blocking recv and a blocking write, one thread,
 * no runtime.
 * Used by scripts/floor (see its main.go) to measure what this machine adds to any gateway's latency.
 *
 *   cc -O2 -o /tmp/relay scripts/floor/relay/relay.c && /tmp/relay 17000 17001
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: relay UDPPORT TCPPORT\n");
		return 2;
	}
	int udp_port = atoi(argv[1]), tcp_port = atoi(argv[2]), one = 1;
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
	static char b[65536];
	for (;;) {
		ssize_t n = recv(u, b, sizeof b, 0);
		if (n <= 0)
			return 0;
		if (write(c, b, n) != n)
			return 0;
	}
}
