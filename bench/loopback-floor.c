// The floor of loopback fan-out on this machine, against which the
// winnerAnnounced burst is read (BENCHMARKS.md, sixth session): a writer
// thread writes `per` 120-byte frames in one write to each of N sockets,
// `rounds` times, while a reader thread epolls and reads them all; it
// prints the CPU each side spends per write and the wall time.
//
//   gcc -O2 -pthread bench/loopback-floor.c -o /tmp/floor
//   ulimit -n 20000; /tmp/floor 5000 100 1; /tmp/floor 5000 20 5; /tmp/floor 5000 1 20
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <errno.h>

static int N, per, rounds, nodelay;
static int *srv, *cli;
static long total_bytes;
static double tcpu(void){ struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t); return t.tv_sec+t.tv_nsec/1e9; }
static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec+t.tv_nsec/1e9; }
static double reader_cpu, writer_cpu, reader_done;
static void *reader(void *a){
  int ep = epoll_create1(0);
  for (int i=0;i<N;i++){ struct epoll_event e={.events=EPOLLIN,.data.u32=i}; epoll_ctl(ep,EPOLL_CTL_ADD,cli[i],&e); }
  long got=0; char buf[65536]; struct epoll_event ev[256];
  double c0=tcpu();
  while (got < total_bytes){
    int n=epoll_wait(ep,ev,256,-1);
    for(int k=0;k<n;k++){ ssize_t r=read(cli[ev[k].data.u32],buf,sizeof buf); if(r>0) got+=r; }
  }
  reader_cpu=tcpu()-c0; reader_done=now();
  return 0;
}
int main(int argc,char**argv){
  N=atoi(argv[1]); per=atoi(argv[2]); rounds=atoi(argv[3]); nodelay=argc>4?atoi(argv[4]):1;
  srv=calloc(N,sizeof(int)); cli=calloc(N,sizeof(int));
  int l=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(l,SOL_SOCKET,SO_REUSEADDR,&one,4);
  struct sockaddr_in a={.sin_family=AF_INET,.sin_port=htons(8199)}; inet_pton(AF_INET,"127.0.0.1",&a.sin_addr);
  if(bind(l,(void*)&a,sizeof a)) {perror("bind");return 1;} listen(l,4096);
  for(int i=0;i<N;i++){ cli[i]=socket(AF_INET,SOCK_STREAM,0); if(connect(cli[i],(void*)&a,sizeof a)){perror("connect");return 1;} srv[i]=accept(l,0,0);
    setsockopt(srv[i],IPPROTO_TCP,TCP_NODELAY,&nodelay,4); fcntl(cli[i],F_SETFL,O_NONBLOCK); }
  char *msg=malloc(120*per); memset(msg,'x',120*per);
  total_bytes=(long)N*per*120*rounds;
  pthread_t t; pthread_create(&t,0,reader,0);
  usleep(100000);
  double t0=now(), c0=tcpu();
  for(int r=0;r<rounds;r++) for(int i=0;i<N;i++){ ssize_t w=write(srv[i],msg,120*per); if(w!=120*per){fprintf(stderr,"short %zd\n",w);} }
  writer_cpu=tcpu()-c0; double tw=now()-t0;
  pthread_join(t,0);
  long writes=(long)N*rounds;
  printf("N=%d per=%d rounds=%d nodelay=%d: writes %ld, writer %.2f us/write (%.3f us/frame), reader %.2f us/write, wall write %.0f ms, all read %.0f ms\n",
    N,per,rounds,nodelay,writes,writer_cpu*1e6/writes,writer_cpu*1e6/writes/per,reader_cpu*1e6/writes,tw*1e3,(reader_done-t0)*1e3);
  return 0;
}
