// Kafka Streams word count with exactly-once (processing.guarantee=exactly_once_v2) against
// Strom: input lines -> words -> groupBy word (a repartition topic) -> count (a state store
// with a changelog topic) -> output topic (word -> count as a long, every update: no record
// cache). Runs until SIGTERM (closes cleanly) or SIGKILL (the test's crash). Prints
// "state X" on every state change, "processed N" every 10 input lines processed in this run
// and "counted N" every 10 count updates output in this run; each line is slowed by a given
// number of ms so that the test can kill it mid-work. Exits 3 if Streams fails (the error is
// printed as "STREAMS ERROR ...").
//
// Usage: StromStreamsWordCount <bootstrap> <application.id> <input> <output> <state dir> <ms per line>
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public class StromStreamsWordCount {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], appId = args[1], input = args[2], output = args[3], stateDir = args[4];
        long msPerLine = Long.parseLong(args[5]);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 3);
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 2);
        props.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        props.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        // Records go out at once rather than at the commit, so that a kill leaves some of
        // them in the open transaction (to be aborted).
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        // No record cache: every count update is output, so each word's counts are 1, 2, 3, ...
        props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        // A killed run's members leave the group within 6 s (the broker's minimum), so that a
        // restart's rebalance does not wait for them for long.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);

        AtomicLong processed = new AtomicLong(), counted = new AtomicLong();
        StreamsBuilder builder = new StreamsBuilder();
        builder.<String, String>stream(input)
            .peek((k, line) -> {
                long n = processed.incrementAndGet();
                if (n % 10 == 0) System.out.println("processed " + n);
                if (msPerLine > 0) {
                    try {
                        Thread.sleep(msPerLine);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            })
            .flatMapValues(line -> Arrays.asList(line.toLowerCase().split("\\s+")))
            .filter((k, word) -> !word.isEmpty())
            .groupBy((k, word) -> word)
            .count(Materialized.as("word-counts"))
            .toStream()
            .peek((word, count) -> {
                long n = counted.incrementAndGet();
                if (n % 10 == 0) System.out.println("counted " + n);
            })
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        AtomicBoolean closing = new AtomicBoolean();
        CountDownLatch done = new CountDownLatch(1);
        streams.setUncaughtExceptionHandler(e -> {
            System.out.println("STREAMS ERROR " + e);
            e.printStackTrace(System.out);
            System.out.flush();
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            System.out.println("state " + now);
            System.out.flush();
            if (now == KafkaStreams.State.ERROR || (now == KafkaStreams.State.NOT_RUNNING && !closing.get())) {
                System.out.println("STREAMS ERROR state " + before + " -> " + now);
                System.out.flush();
                Runtime.getRuntime().halt(3);
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            closing.set(true);
            boolean closed = streams.close(Duration.ofSeconds(20));
            System.out.println(closed ? "closed" : "close timed out");
            System.out.flush();
            done.countDown();
        }));
        streams.start();
        done.await();
    }
}
