//! Realistic requests for `registry scale-test`, generated deterministically from a seed.
//!
//! Titles are `<verb> <object> <qualifier>`, the objects and qualifiers being the subjects and
//! predicates of the Prowler checks' titles (`vocabulary.txt`, embedded so the binary does not
//! depend on where it runs). Request `i` takes combination `(a * i + b) mod K` of the `K`
//! possible ones, `a` coprime to `K`: a permutation, so the first `K` titles are distinct without
//! any bookkeeping; beyond `K`, a numbered suffix keeps them distinct. The context and a given
//! scope for a third of the requests are drawn from the seed too, so the generator has both
//! requests to complete and requests to check.

use std::fmt::Write as _;

use registry_core::{Context, Field, Fields, Request, Schema};

const VOCABULARY: &str = include_str!("vocabulary.txt");

const ENVS: [&str; 4] = ["prod", "staging", "dev", "test"];
const TEAMS: [&str; 6] = [
    "platform",
    "security",
    "data",
    "payments",
    "identity",
    "observability",
];

/// splitmix64: small, fast and good enough to draw test data from.
#[derive(Debug, Clone, Default)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (which must not be 0); the bias is negligible for small `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The three word lists of `vocabulary.txt`.
struct Vocabulary {
    verbs: Vec<&'static str>,
    objects: Vec<&'static str>,
    qualifiers: Vec<&'static str>,
}

impl Vocabulary {
    fn load() -> Vocabulary {
        let mut v = Vocabulary {
            verbs: Vec::new(),
            objects: Vec::new(),
            qualifiers: Vec::new(),
        };
        let mut section = "";
        for line in VOCABULARY.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name;
                continue;
            }
            match section {
                "verbs" => v.verbs.push(line),
                "objects" => v.objects.push(line),
                "qualifiers" => v.qualifiers.push(line),
                _ => {}
            }
        }
        v
    }

    fn combinations(&self) -> u64 {
        (self.verbs.len() * self.objects.len() * self.qualifiers.len()) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `count` requests, numbered from line 1.
pub struct Requests {
    vocabulary: Vocabulary,
    scopes: Vec<String>,
    seed: u64,
    count: u64,
    next: u64,
    a: u64,
    b: u64,
}

impl Requests {
    pub fn new(seed: u64, count: u64, schema: &Schema) -> Requests {
        let vocabulary = Vocabulary::load();
        let k = vocabulary.combinations().max(1);
        let mut rng = Rng::new(seed);
        let mut a = rng.below(k) | 1;
        while gcd(a, k) != 1 {
            a = (a + 2) % k;
        }
        let b = rng.below(k);
        Requests {
            vocabulary,
            scopes: schema.allowed(Field::Scope).to_vec(),
            seed,
            count,
            next: 0,
            a,
            b,
        }
    }

    /// The title of request `i`.
    fn title(&self, i: u64) -> String {
        let v = &self.vocabulary;
        let k = v.combinations().max(1);
        let c = ((u128::from(self.a) * u128::from(i) + u128::from(self.b)) % u128::from(k)) as u64;
        let (nv, no) = (v.verbs.len() as u64, v.objects.len() as u64);
        let verb = v.verbs.get((c % nv) as usize).copied().unwrap_or("Ensure");
        let object = v.objects.get((c / nv % no) as usize).copied().unwrap_or("");
        let qualifier = v
            .qualifiers
            .get((c / nv / no) as usize)
            .copied()
            .unwrap_or("");
        // Written piece by piece into one buffer of the right size: `format!` grew its string
        // several times per title, a third of this generator's allocations.
        let mut title = String::with_capacity(verb.len() + object.len() + qualifier.len() + 16);
        for (at, piece) in [verb, object, qualifier].into_iter().enumerate() {
            if at > 0 {
                title.push(' ');
            }
            title.push_str(piece);
        }
        let round = i / k;
        if round > 0 {
            write!(title, " (set {})", round + 1).expect("writing into a string never fails");
        }
        title
    }

    pub(super) fn request(&self, i: u64) -> Result<Request, String> {
        let mut rng = Rng::new(self.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let env = ENVS[rng.below(ENVS.len() as u64) as usize];
        let team = TEAMS[rng.below(TEAMS.len() as u64) as usize];
        let mut fields = Fields::default();
        if rng.below(3) == 0 && !self.scopes.is_empty() {
            fields.scope = Some(self.scopes[rng.below(self.scopes.len() as u64) as usize].clone());
        }
        let context = Context::new([
            ("env".to_owned(), env.to_owned()),
            ("team".to_owned(), team.to_owned()),
        ])
        .map_err(|e| e.to_string())?;
        Request::new(&self.title(i), fields, None, context).map_err(|e| e.to_string())
    }
}

impl Iterator for Requests {
    type Item = (u64, Result<Request, String>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        Some((i + 1, self.request(i)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn vocabulary_has_every_section() {
        let v = Vocabulary::load();
        assert!(v.verbs.len() >= 5, "{}", v.verbs.len());
        assert!(v.objects.len() >= 100, "{}", v.objects.len());
        assert!(v.qualifiers.len() >= 100, "{}", v.qualifiers.len());
    }

    /// Titles are the three pieces with single spaces between, and a round's suffix past the
    /// combinations, as `format!` would write them.
    #[test]
    fn titles_are_written_as_formatted() {
        let r = Requests::new(3, 0, &Schema::default());
        let v = &r.vocabulary;
        let k = v.combinations();
        for i in (0..200).chain(k - 5..k + 5).chain(3 * k..3 * k + 3) {
            let title = r.title(i);
            let c = ((u128::from(r.a) * u128::from(i) + u128::from(r.b)) % u128::from(k)) as u64;
            let (nv, no) = (v.verbs.len() as u64, v.objects.len() as u64);
            let mut expected = format!(
                "{} {} {}",
                v.verbs[(c % nv) as usize],
                v.objects[(c / nv % no) as usize],
                v.qualifiers[(c / nv / no) as usize]
            );
            if i >= k {
                expected.push_str(&format!(" (set {})", i / k + 1));
            }
            assert_eq!(title, expected, "title {i}");
        }
    }

    #[test]
    fn requests_are_distinct_and_the_same_for_the_same_seed() {
        let schema = Schema::default();
        let k = Vocabulary::load().combinations();
        // Past the combinations, so the numbered suffix is exercised too.
        let mut r = Requests::new(7, 0, &schema);
        let mut fps = HashSet::new();
        for i in (0..3000).chain(k - 100..k + 100) {
            let request = r.request(i).expect("generated requests are valid");
            assert!(fps.insert(request.fingerprint()), "request {i} repeats");
        }
        r.count = 50;
        let first: Vec<String> = r
            .map(|(_, x)| x.expect("valid").title().to_owned())
            .collect();
        let again: Vec<String> = Requests::new(7, 50, &schema)
            .map(|(_, x)| x.expect("valid").title().to_owned())
            .collect();
        let other: Vec<String> = Requests::new(8, 50, &schema)
            .map(|(_, x)| x.expect("valid").title().to_owned())
            .collect();
        assert_eq!(first, again);
        assert_ne!(first, other);
    }
}
