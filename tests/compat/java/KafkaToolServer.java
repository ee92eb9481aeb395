/*
 * One long-lived JVM that runs Apache Kafka's shell tools (TopicCommand, ConsoleConsumer, ...)
 * for the compat tests, so each tool run costs milliseconds instead of a JVM start.
 *
 * Protocol: one JSON object per line on stdin,
 *   {"id": 1, "class": "org.apache.kafka.tools.TopicCommand", "args": ["--list", ...],
 *    "input": "text fed to System.in", "timeout": 60}
 * and one JSON line per command on stdout,
 *   {"id": 1, "rc": 0, "out": "...", "err": "...", "ms": 123, "timedOut": false}
 *
 * How a tool's process-wide effects are caught:
 * - Exit: Kafka's tools leave through org.apache.kafka.common.utils.Exit, whose exit and halt
 *   procedures are replaced by one that records the first status code and throws ToolExit (an
 *   Error, so `catch (Exception e)` blocks in the tools do not swallow it). Output written
 *   after that first exit (a `catch (Throwable t)` printing the ToolExit, say) is dropped, as a
 *   real process would have been gone. Shutdown hooks a tool registers (Exit.addShutdownHook)
 *   are kept with its command and run when it ends, as the JVM would at exit: the console
 *   producer only flushes and closes its producer in one. (Only the Verifiable* tools call System.exit
 *   directly; run those with scripts/kafka-tool.)
 * - Streams: System.out, System.err and System.in are replaced once, at start, before any Kafka
 *   or Scala class loads, by streams that forward to the buffers of the command the writing
 *   thread works for (an InheritableThreadLocal set on the tool's main thread). So a tool
 *   (or scala.Console, or log4j's console appender) that keeps the PrintStream it saw at class
 *   load still writes into the right command's output.
 * - Timeouts: the tool's main runs on its own thread; past the timeout it is interrupted, then
 *   stopped (Thread.stop, still there in Java 17), and rc is 124 as with timeout(1).
 * A command with "background": true is started and answered at once ({"id": 7, "started":
 * true}); {"id": 8, "wait": 7, "timeout": 30} later answers with its result. Output goes to
 * the command whose thread (or a thread it started) writes it.
 */
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.common.utils.Exit;

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

public class KafkaToolServer {
    /** Thrown in place of exiting the JVM. */
    static final class ToolExit extends Error {
        final int code;

        ToolExit(int code) {
            super("exit " + code, null, false, false);
            this.code = code;
        }
    }

    /** The running command: its output buffers, its input, and the status it exited with. */
    static final class Command {
        final ByteArrayOutputStream out = new ByteArrayOutputStream();
        final ByteArrayOutputStream err = new ByteArrayOutputStream();
        final InputStream in;
        final CountDownLatch exited = new CountDownLatch(1);
        final List<Runnable> shutdownHooks = java.util.Collections.synchronizedList(new ArrayList<>());
        volatile Integer exitCode;
        // How much output there was when the tool first exited: a real process writes no more
        // after that, so what tools print while unwinding from ToolExit is cut off.
        int outAtExit = -1, errAtExit = -1;

        Command(byte[] input) {
            in = new ByteArrayInputStream(input);
        }

        synchronized void exit(int code) {
            if (exitCode == null) {
                exitCode = code;
                synchronized (out) {
                    outAtExit = out.size();
                }
                synchronized (err) {
                    errAtExit = err.size();
                }
            }
            exited.countDown();
        }

        /** What the tool wrote up to its first exit. */
        static String upTo(ByteArrayOutputStream buf, int size) {
            synchronized (buf) {
                byte[] b = buf.toByteArray();
                int n = size < 0 ? b.length : Math.min(size, b.length);
                return new String(b, 0, n, StandardCharsets.UTF_8);
            }
        }
    }

    private static final Command IDLE = new Command(new byte[0]);
    // The command a thread works for: set on each tool's main thread and inherited by every
    // thread it starts (clients' network and heartbeat threads, log4j writes from them...).
    private static final InheritableThreadLocal<Command> CONTEXT = new InheritableThreadLocal<>();

    static Command current() {
        Command c = CONTEXT.get();
        return c == null ? IDLE : c;
    }

    /** Forwards to the current command's stdout or stderr. */
    static final class Forward extends OutputStream {
        private final boolean err;

        Forward(boolean err) {
            this.err = err;
        }

        private ByteArrayOutputStream target() {
            Command c = current();
            return err ? c.err : c.out;
        }

        @Override
        public void write(int b) {
            if (current() == IDLE) return; // a thread no command owns: dropped
            ByteArrayOutputStream t = target();
            synchronized (t) {
                t.write(b);
            }
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (current() == IDLE) return;
            ByteArrayOutputStream t = target();
            synchronized (t) {
                t.write(b, off, len);
            }
        }
    }

    /** Reads the current command's input (EOF once it is used up, or when there is none). */
    static final class ForwardIn extends InputStream {
        @Override
        public int read() throws java.io.IOException {
            return current().in.read();
        }

        @Override
        public int read(byte[] b, int off, int len) throws java.io.IOException {
            return current().in.read(b, off, len);
        }

        @Override
        public int available() throws java.io.IOException {
            return current().in.available();
        }
    }

    public static void main(String[] argv) throws Exception {
        // Keep the real streams for the protocol, then swap in the forwarding ones before any
        // Kafka, Scala or log4j class can take a copy of System.out.
        BufferedReader requests = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream replies = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, "UTF-8");
        PrintStream realErr = System.err;
        System.setOut(new PrintStream(new Forward(false), true, "UTF-8"));
        System.setErr(new PrintStream(new Forward(true), true, "UTF-8"));
        System.setIn(new ForwardIn());

        Exit.setExitProcedure((code, message) -> {
            current().exit(code);
            throw new ToolExit(code);
        });
        Exit.setHaltProcedure((code, message) -> {
            current().exit(code);
            throw new ToolExit(code);
        });
        Exit.setShutdownHookAdder((name, hook) -> {
            Command c = current();
            if (c != IDLE) c.shutdownHooks.add(hook);
        });
        // A tool thread other than main that exits: its ToolExit ends that thread quietly.
        Thread.UncaughtExceptionHandler fallback = Thread.getDefaultUncaughtExceptionHandler();
        Thread.setDefaultUncaughtExceptionHandler((thread, e) -> {
            if (e instanceof ToolExit || e instanceof ThreadDeath) return;
            if (fallback != null) {
                fallback.uncaughtException(thread, e);
            } else {
                System.err.print("Exception in thread \"" + thread.getName() + "\" ");
                e.printStackTrace();
            }
        });

        ObjectMapper json = new ObjectMapper();
        replies.println("{\"ready\": true}");
        String line;
        while ((line = requests.readLine()) != null) {
            if (line.isBlank()) continue;
            ObjectNode reply = json.createObjectNode();
            try {
                JsonNode req = json.readTree(line);
                reply.set("id", req.get("id"));
                double timeout = req.has("timeout") ? req.get("timeout").asDouble() : 60;
                if (req.has("wait")) {
                    Running r = background.remove(req.get("wait").asLong());
                    if (r == null) throw new IllegalArgumentException("no background command " + req.get("wait"));
                    r.finish(timeout, reply);
                } else {
                    Running r = start(req);
                    if (req.path("background").asBoolean(false)) {
                        background.put(req.get("id").asLong(), r);
                        reply.put("started", true);
                    } else {
                        r.finish(timeout, reply);
                    }
                }
            } catch (Throwable t) {
                reply.put("rc", 125);
                reply.put("out", "");
                reply.put("err", "KafkaToolServer: " + t);
                t.printStackTrace(realErr);
            }
            replies.println(json.writeValueAsString(reply));
        }
    }

    private static final java.util.Map<Long, Running> background = new java.util.HashMap<>();

    /** A tool's main running on its own thread. */
    static final class Running {
        final Command cmd;
        final Thread thread;
        final long start = System.nanoTime();

        Running(Command cmd, Thread thread) {
            this.cmd = cmd;
            this.thread = thread;
        }

        /** What the JVM does when a tool's process ends: runs the hooks the tool added (the
         *  console producer closes, and so flushes, its producer in one), all at once, each on
         *  its own thread, for up to 10 s in all. */
        void runShutdownHooks() throws InterruptedException {
            List<Thread> threads = new ArrayList<>();
            synchronized (cmd.shutdownHooks) {
                for (Runnable hook : cmd.shutdownHooks) {
                    Thread h = new Thread(() -> {
                        CONTEXT.set(cmd);
                        hook.run();
                    }, "shutdown-hook");
                    h.setDaemon(true);
                    h.start();
                    threads.add(h);
                }
                cmd.shutdownHooks.clear();
            }
            long deadline = System.currentTimeMillis() + 10_000;
            for (Thread h : threads) {
                h.join(Math.max(1, deadline - System.currentTimeMillis()));
                if (h.isAlive()) stop(h);
            }
        }

        /** Waits up to timeout seconds for the tool to exit, stopping it past that. */
        void finish(double timeout, ObjectNode reply) throws InterruptedException {
            boolean timedOut = !cmd.exited.await((long) (timeout * 1000), TimeUnit.MILLISECONDS);
            if (timedOut) {
                cmd.exit(124);
                thread.interrupt();
            }
            // Exit may have come from another of the tool's threads; let main unwind.
            thread.join(timedOut ? 2000 : 200);
            runShutdownHooks();
            thread.join(2000);
            if (thread.isAlive()) stop(thread);
            reply.put("rc", cmd.exitCode);
            reply.put("out", Command.upTo(cmd.out, cmd.outAtExit));
            reply.put("err", Command.upTo(cmd.err, cmd.errAtExit));
            reply.put("ms", (System.nanoTime() - start) / 1_000_000);
            reply.put("timedOut", timedOut);
        }
    }

    private static Running start(JsonNode req) throws Exception {
        String className = req.get("class").asText();
        List<String> args = new ArrayList<>();
        if (req.has("args")) req.get("args").forEach(a -> args.add(a.asText()));
        byte[] input = req.hasNonNull("input") ? req.get("input").asText().getBytes(StandardCharsets.UTF_8) : new byte[0];
        Method main = Class.forName(className).getMethod("main", String[].class);
        Command cmd = new Command(input);
        Thread t = new Thread(() -> {
            CONTEXT.set(cmd);
            try {
                main.invoke(null, (Object) args.toArray(new String[0]));
                cmd.exit(0);
            } catch (InvocationTargetException e) {
                Throwable cause = e.getCause();
                if (cause instanceof ToolExit) {
                    cmd.exit(((ToolExit) cause).code);
                } else {
                    // What the JVM does with an uncaught exception from main: trace, status 1.
                    System.err.print("Exception in thread \"main\" ");
                    cause.printStackTrace();
                    cmd.exit(1);
                }
            } catch (ToolExit e) {
                cmd.exit(e.code);
            } catch (Throwable e) {
                e.printStackTrace();
                cmd.exit(1);
            }
        }, "main-" + req.get("id").asText());
        t.setDaemon(true);
        t.start();
        return new Running(cmd, t);
    }

    @SuppressWarnings({"deprecation", "removal"})
    private static void stop(Thread t) {
        try {
            t.stop();
        } catch (Throwable ignored) {
            // UnsupportedOperationException on a JDK without Thread.stop: leave it running.
        }
    }
}
