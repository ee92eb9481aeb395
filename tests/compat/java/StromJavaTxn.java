// Transactions (exactly-once) with the Java client (kafka-clients) against Strom: a
// transactional producer's committed transactions are read by read_committed consumers and its
// aborted ones are not; a second producer with the same transactional.id fences the first; a
// consume-transform-produce loop commits the group's offsets in its transactions
// (sendOffsetsToTransaction with the consumer's group metadata), aborting and rewinding now
// and then. Prints "ALL OK" at the end; exits non-zero with "FAILED: ..." on any mismatch.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.*;

public class StromJavaTxn {
    static String bootstrap;

    static void check(boolean ok, String what) {
        if (!ok) {
            System.out.println("FAILED: " + what);
            System.out.flush();
            System.exit(1);
        }
        System.out.println("ok: " + what);
    }

    static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    static String newTopic(Admin admin, int partitions) throws Exception {
        String name = unique("jtxn");
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
        return name;
    }

    static List<TopicPartition> partitions(String topic, int n) {
        List<TopicPartition> tps = new ArrayList<>();
        for (int p = 0; p < n; p++) tps.add(new TopicPartition(topic, p));
        return tps;
    }

    static KafkaProducer<String, String> txnProducer(String tid) {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid);
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        KafkaProducer<String, String> p = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
        p.initTransactions();
        return p;
    }

    static KafkaConsumer<String, String> consumer(String isolation, String group, String protocol) {
        return consumer(isolation, group, protocol, 500);
    }

    static KafkaConsumer<String, String> consumer(String isolation, String group, String protocol, int maxPollRecords) {
        Properties cp = new Properties();
        cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, String.valueOf(maxPollRecords));
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) {
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        }
        return new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer());
    }

    record Rec(int partition, long offset, String value) {}

    /** Every record of `topic` read with `isolation` from the start of each partition, in read
     * order, until each partition's position reaches its end offset (the last stable offset
     * for read_committed), within 30 s. Also checks the positions reached the end offsets. */
    static List<Rec> readAll(String topic, int n, String isolation) {
        List<Rec> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(isolation, null, null)) {
            List<TopicPartition> tps = partitions(topic, n);
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> ends = c.endOffsets(tps, Duration.ofSeconds(30));
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    out.add(new Rec(r.partition(), r.offset(), r.value()));
                boolean atEnd = true;
                for (TopicPartition tp : tps) atEnd &= c.position(tp) >= ends.get(tp);
                if (atEnd) break;
            }
            Map<TopicPartition, Long> positions = new HashMap<>();
            for (TopicPartition tp : tps) positions.put(tp, c.position(tp));
            check(positions.equals(ends), isolation + " positions " + positions + " reached the end offsets " + ends);
        }
        return out;
    }

    /** Problems with `records` against `expected` (each to be read once): lost, duplicated,
     * aborted ones read, unexpected ones; per partition offsets not increasing or values out
     * of `sent` order. Empty if none (mirrors check_exactly in test_transactions.py). */
    static List<String> checkExactly(List<Rec> records, Collection<String> expected, Collection<String> aborted, List<String> sent) {
        List<String> problems = new ArrayList<>();
        Map<String, Integer> counts = new HashMap<>();
        for (Rec r : records) counts.merge(r.value(), 1, Integer::sum);
        Set<String> exp = new HashSet<>(expected), ab = new HashSet<>(aborted);
        Set<String> lost = new TreeSet<>(exp);
        lost.removeAll(counts.keySet());
        Set<String> dup = new TreeSet<>();
        counts.forEach((v, c) -> { if (c > 1) dup.add(v); });
        Set<String> abortedRead = new TreeSet<>(ab);
        abortedRead.retainAll(counts.keySet());
        Set<String> unexpected = new TreeSet<>(counts.keySet());
        unexpected.removeAll(exp);
        unexpected.removeAll(ab);
        for (var e : List.of(Map.entry("lost", lost), Map.entry("duplicated", dup),
                             Map.entry("aborted but read", abortedRead), Map.entry("unexpected", unexpected)))
            if (!e.getValue().isEmpty())
                problems.add(e.getKey() + ": " + e.getValue().size() + ", e.g. " + e.getValue().stream().limit(5).toList());
        Map<String, Integer> rank = new HashMap<>();
        for (int i = 0; i < sent.size(); i++) rank.put(sent.get(i), i);
        Map<Integer, Rec> last = new HashMap<>();
        for (Rec r : records) {
            Rec prev = last.put(r.partition(), r);
            if (prev == null) continue;
            if (r.offset() <= prev.offset())
                problems.add("partition " + r.partition() + ": offset " + r.offset() + " after " + prev.offset());
            Integer a = rank.get(prev.value()), b = rank.get(r.value());
            if (a != null && b != null && b < a)
                problems.add("partition " + r.partition() + ": " + r.value() + " after " + prev.value());
        }
        return problems;
    }

    static boolean isFenced(Throwable t) {
        for (; t != null; t = t.getCause())
            if (t instanceof ProducerFencedException || t instanceof InvalidProducerEpochException) return true;
        return false;
    }

    static String chain(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (; t != null; t = t.getCause()) sb.append(sb.length() > 0 ? " <- " : "").append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
        return sb.toString();
    }

    /** Ten transactions of 20 keyed records over three partitions, even ones committed and odd
     * ones aborted after their records were written: read_committed reads the 100 committed
     * records once each in send order, read_uncommitted all 200. */
    static void commitAndAbort(Admin admin) throws Exception {
        String topic = newTopic(admin, 3);
        List<String> sent = new ArrayList<>(), committed = new ArrayList<>(), aborted = new ArrayList<>();
        try (KafkaProducer<String, String> p = txnProducer(unique("tid"))) {
            for (int t = 0; t < 10; t++) {
                p.beginTransaction();
                List<String> values = new ArrayList<>();
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (int i = 0; i < 20; i++) {
                    String v = "t" + t + "-r" + i;
                    values.add(v);
                    acks.add(p.send(new ProducerRecord<>(topic, "k" + i, v)));
                }
                p.flush();
                for (Future<RecordMetadata> f : acks) f.get(30, TimeUnit.SECONDS);
                if (t % 2 == 0) {
                    p.commitTransaction();
                    committed.addAll(values);
                } else {
                    p.abortTransaction();
                    aborted.addAll(values);
                }
                sent.addAll(values);
            }
        }
        check(true, "10 transactions written, 5 committed and 5 aborted");
        List<Rec> got = readAll(topic, 3, "read_committed");
        check(checkExactly(got, committed, aborted, sent).isEmpty(),
            "read_committed reads the committed records once each in order: " + checkExactly(got, committed, aborted, sent));
        check(got.stream().map(Rec::partition).distinct().count() == 3, "keys spread over the three partitions");
        got = readAll(topic, 3, "read_uncommitted");
        check(checkExactly(got, sent, List.of(), sent).isEmpty(),
            "read_uncommitted reads every record once in order: " + checkExactly(got, sent, List.of(), sent));
    }

    /** Producer B initialising A's transactional.id fences A and aborts A's open transaction:
     * A's next send or its commit fails with ProducerFencedException or
     * InvalidProducerEpochException (abortable first, then fenced on abort, is allowed); B's
     * committed records are read, A's never (read_committed). */
    static void fencing(Admin admin) throws Exception {
        String topic = newTopic(admin, 1);
        String tid = unique("tid");
        KafkaProducer<String, String> a = txnProducer(tid);
        a.beginTransaction();
        List<String> aBefore = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            aBefore.add("a-before-" + i);
            a.send(new ProducerRecord<>(topic, 0, null, "a-before-" + i));
        }
        a.flush();
        KafkaProducer<String, String> b = txnProducer(tid);
        check(true, "a second producer with the same transactional.id initialised while the first's transaction is open");

        List<Future<RecordMetadata>> after = new ArrayList<>();
        Throwable fenced = null;
        String where = null;
        try {
            for (int i = 0; i < 5; i++) after.add(a.send(new ProducerRecord<>(topic, 0, null, "a-after-" + i)));
            a.flush();
        } catch (KafkaException e) {
            fenced = e;
            where = "send";
        }
        int delivered = 0;
        Throwable sendError = null;
        for (Future<RecordMetadata> f : after) {
            try {
                f.get(30, TimeUnit.SECONDS);
                delivered++;
            } catch (ExecutionException e) {
                sendError = e.getCause();
            }
        }
        check(delivered == 0, "none of the fenced producer's later records was written (" + delivered + " were)");
        if (fenced == null && sendError != null && isFenced(sendError)) {
            fenced = sendError;
            where = "send future";
        }
        Throwable commitError = null;
        try {
            a.commitTransaction();
        } catch (KafkaException e) {
            commitError = e;
        }
        check(commitError != null, "the fenced producer's commit fails");
        if (fenced == null) {
            fenced = commitError;
            where = "commitTransaction";
        }
        if (!(commitError instanceof ProducerFencedException)) {
            // An abortable error (KIP-588: InvalidProducerEpoch on produce): the abort is fenced.
            try {
                a.abortTransaction();
                check(false, "the fenced producer's abort succeeded after " + chain(commitError));
            } catch (KafkaException e) {
                if (!isFenced(fenced)) {
                    fenced = e;
                    where = "abortTransaction";
                }
                check(isFenced(e), "the fenced producer's abort fails fenced: " + chain(e));
            }
        }
        check(isFenced(fenced), "the first producer is fenced on its " + where + ": " + chain(fenced));
        a.close(Duration.ofSeconds(5));

        b.beginTransaction();
        List<String> bValues = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            bValues.add("b-" + i);
            b.send(new ProducerRecord<>(topic, 0, null, "b-" + i));
        }
        b.commitTransaction();
        b.close(Duration.ofSeconds(5));
        List<String> sent = new ArrayList<>(aBefore);
        sent.addAll(bValues);
        List<Rec> got = readAll(topic, 1, "read_committed");
        check(checkExactly(got, bValues, aBefore, sent).isEmpty(),
            "read_committed reads the new producer's records, not the fenced one's: " + checkExactly(got, bValues, aBefore, sent));
        got = readAll(topic, 1, "read_uncommitted");
        check(checkExactly(got, sent, List.of(), sent).isEmpty(),
            "read_uncommitted reads the aborted and the committed records: " + checkExactly(got, sent, List.of(), sent));
    }

    /** A processor (group consumer, read_committed, no auto commit, `protocol` group protocol)
     * reads 300 inputs and, batch by batch (polls of at most 10 records), each in one
     * transaction, writes them upper-cased and commits its positions with
     * sendOffsetsToTransaction(offsets, groupMetadata()); every fourth batch is aborted instead
     * and the consumer rewound to the committed offsets.
     * Afterwards the group's committed offsets are the inputs' end offsets and read_committed
     * output holds each transformed input once. */
    static void consumeTransformProduce(Admin admin, String protocol) throws Exception {
        String src = newTopic(admin, 3), dst = newTopic(admin, 3), group = unique("g-" + protocol);
        int n = 300;
        List<String> inputs = new ArrayList<>();
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        try (Producer<String, String> p = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < n; i++) {
                inputs.add("in-" + i);
                p.send(new ProducerRecord<>(src, "k" + i, "in-" + i));
            }
            p.flush();
        }
        List<TopicPartition> srcTps = partitions(src, 3);
        int batches = 0, abortedBatches = 0;
        long done = 0;
        try (KafkaConsumer<String, String> c = consumer("read_committed", group, protocol, 10);
             KafkaProducer<String, String> p = txnProducer(unique("tid"))) {
            c.subscribe(List.of(src));
            long deadline = System.currentTimeMillis() + 60_000;
            while (done < n && System.currentTimeMillis() < deadline) {
                ConsumerRecords<String, String> recs = c.poll(Duration.ofMillis(500));
                if (recs.isEmpty()) continue;
                batches++;
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : recs) {
                    p.send(new ProducerRecord<>(dst, r.key(), r.value().toUpperCase()));
                    offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                }
                p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                // Written before the abort (unsent records an abort would just drop).
                p.flush();
                if (batches % 4 == 0) {
                    p.abortTransaction();
                    abortedBatches++;
                    // Rewind to what the group has committed (or the start where nothing is).
                    Map<TopicPartition, OffsetAndMetadata> committed = c.committed(c.assignment(), Duration.ofSeconds(30));
                    for (TopicPartition tp : c.assignment()) {
                        OffsetAndMetadata o = committed.get(tp);
                        c.seek(tp, o == null ? 0 : o.offset());
                    }
                } else {
                    p.commitTransaction();
                    done += recs.count();
                }
            }
            check(done == n, protocol + " consume-transform-produce processed " + done + " of " + n + " in "
                + batches + " batches (" + abortedBatches + " aborted and retried)");
            check(abortedBatches > 0, protocol + ": at least one batch aborted and retried (" + abortedBatches + ")");
            Map<TopicPartition, Long> ends = c.endOffsets(srcTps, Duration.ofSeconds(30));
            Map<TopicPartition, OffsetAndMetadata> byConsumer = c.committed(new HashSet<>(srcTps), Duration.ofSeconds(30));
            Map<TopicPartition, Long> committedByConsumer = new HashMap<>();
            byConsumer.forEach((tp, o) -> { if (o != null) committedByConsumer.put(tp, o.offset()); });
            check(committedByConsumer.equals(ends), protocol + " group's committed offsets (consumer) " + committedByConsumer
                + " are the input end offsets " + ends);
            Map<TopicPartition, Long> committedByAdmin = new HashMap<>();
            admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS)
                .forEach((tp, o) -> committedByAdmin.put(tp, o.offset()));
            check(committedByAdmin.equals(ends), protocol + " group's committed offsets (admin) " + committedByAdmin
                + " are the input end offsets " + ends);
        }
        List<String> outputs = inputs.stream().map(String::toUpperCase).toList();
        List<Rec> got = readAll(dst, 3, "read_committed");
        check(checkExactly(got, outputs, List.of(), List.of()).isEmpty(),
            protocol + " output holds each input once (read_committed): " + checkExactly(got, outputs, List.of(), List.of()));
        got = readAll(dst, 3, "read_uncommitted");
        check(got.size() > n, protocol + " read_uncommitted also reads the aborted batches' records (" + got.size() + " > " + n + ")");
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            long t0 = System.currentTimeMillis();
            commitAndAbort(admin);
            System.out.println("-- commit/abort: " + (System.currentTimeMillis() - t0) + " ms");
            t0 = System.currentTimeMillis();
            fencing(admin);
            System.out.println("-- fencing: " + (System.currentTimeMillis() - t0) + " ms");
            for (String protocol : new String[] {"classic", "consumer"}) {
                t0 = System.currentTimeMillis();
                consumeTransformProduce(admin, protocol);
                System.out.println("-- consume-transform-produce (" + protocol + "): " + (System.currentTimeMillis() - t0) + " ms");
            }
        } catch (Throwable t) {
            System.out.println("FAILED: " + chain(t));
            t.printStackTrace(System.out);
            System.out.flush();
            System.exit(1);
        }
        System.out.println("ALL OK");
        System.out.flush();
        System.exit(0);
    }
}
